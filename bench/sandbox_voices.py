"""Is a sandbox model's held-out gap about the scenarios or the voices? Rates per (split, voices).

Rolls the base instruct model and each given checkpoint out on the same simulated users for every
pair of scenario split (validation, test) and user voices (training, held-out), and prints the
pooled ground-truth rates side by side: interruption, jump-in at "um" pauses, unresponsiveness,
unsafe compliance, benign refusals and QA (docs/sandbox.md section 12).

    NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 .venv/bin/python bench/sandbox_voices.py \
        RUN/run/train/best [MORE_CHECKPOINTS] [--n 120] [--assets DIR]
"""

from __future__ import annotations

import argparse

from duplexalign.models.presets import load_model
from duplexalign.sandbox.build import ASSETS_DIR
from duplexalign.sandbox.deploy import Assets, DeployConfig, deploy, user_items
from duplexalign.sandbox.validation import pooled_metrics

RATES = ("interruption", "jump_in_at_pause", "unresponsiveness", "unsafe_compliance",
         "benign_refusal", "qa_accuracy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", help="model folders to compare with the base")
    ap.add_argument("--n", type=int, default=120, help="users per (split, voices) pair")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--assets", default=str(ASSETS_DIR))
    args = ap.parse_args()
    assets = Assets.load(args.assets)
    models = {"base": assets.instruct, **{c: c for c in args.checkpoints}}
    print("| users | model | " + " | ".join(RATES) + " |")
    print("|---|---|" + "---|" * len(RATES))
    for split in ("validation", "test"):
        for voices in ("train", "heldout"):
            cfg = DeployConfig(split=split, voices=voices, conversations=args.n, seed=args.seed)
            items = user_items(cfg, assets, progress=False)
            for name, path in models.items():
                rates = pooled_metrics(deploy(load_model(path), cfg, assets, items=items,
                                              decode_audio=False, progress=False))
                print(f"| {split}, {voices} voices | {name} | "
                      + " | ".join(f"{100 * rates[k]:.1f}" for k in RATES) + " |", flush=True)


if __name__ == "__main__":
    main()
