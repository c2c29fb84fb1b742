"""Does the sandbox's instruct model hear the request? Teacher-forced probe of its text stream.

Renders conversations of the flawed policy and scores the instruct model, teacher-forced, at the
frames where the policy says (a) the first token of an answer word ("paris") and (b) the first token
of a reply's key word ("sorry", "sure", "use", ...). It compares conversations the model was trained on
(the first specs of the build corpus), new renderings of training scenarios, and test scenarios
spoken by held-out voices: a large gap between the first two is memorisation (docs/sandbox.md).

    NO_TORCH_COMPILE=1 .venv/bin/python bench/sandbox_hearing.py [--assets DIR] [--n 100]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from duplexalign.models.forward import text_logits
from duplexalign.models.presets import load_model
from duplexalign.sandbox.build import (
    ASSETS_DIR,
    BuildConfig,
    conversation_specs,
    encode_conversation,
)
from duplexalign.sandbox.deploy import Assets
from duplexalign.sandbox.policy import Flaws, render
from duplexalign.sandbox.scenarios import ANIMALS, CAPITALS, COLOURS, COUNTS, build_bank
from duplexalign.sandbox.users import HELDOUT_VOICES, MODEL_VOICE, TRAIN_VOICES, default_synth

ANSWERS = {*CAPITALS.values(), *COLOURS.values(), *ANIMALS.values(), *COUNTS.values()}
KEY_WORDS = {"sorry", "sure", "use", "check", "take"}


def probe(model, assets: Assets, rendered: list, duration: float
          ) -> dict[str, tuple[float, int]]:
    """Argmax accuracy (and count) at answer-word and key-word onsets of `rendered` conversations
    (each `duration` seconds long)."""
    tok = assets.tokenizer
    codes = torch.from_numpy(np.stack([encode_conversation(r, tok, assets.codec, duration)
                                       for r in rendered]))
    with torch.no_grad():
        pred = text_logits(model, codes).argmax(-1)
    hits = {"answer": [0, 0], "key_word": [0, 0]}
    for b, r in enumerate(rendered):
        text = codes[b, 0]
        for w in r.model_words:
            kind = "answer" if w.text in ANSWERS else "key_word" if w.text in KEY_WORDS else None
            if kind is None:
                continue
            first = tok.encode_word(w.text)[0]
            f0 = int(round(w.start * 12.5))
            frame = next((f for f in range(max(f0 - 2, 0), min(f0 + 4, text.shape[0]))
                          if text[f] == first), None)
            if frame is not None:
                hits[kind][0] += int(pred[b, frame] == first)
                hits[kind][1] += 1
    return {k: (h / n if n else float("nan"), n) for k, (h, n) in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default=str(ASSETS_DIR))
    ap.add_argument("--n", type=int, default=100, help="conversations per condition")
    args = ap.parse_args()
    torch.set_num_threads(2)
    assets = Assets.load(args.assets)
    model = load_model(assets.instruct).eval()
    build_cfg = BuildConfig()
    synth, bank, flaws = default_synth(), build_bank(build_cfg.seed), Flaws()
    conditions = [("trained conversations", "train", TRAIN_VOICES, build_cfg.seed),
                  ("new renderings, train scenarios", "train", TRAIN_VOICES, 99),
                  ("test scenarios, held-out voices", "test", HELDOUT_VOICES, 98)]
    print("| condition | answer-word onset | key-word onset |\n|---|---|---|")
    for name, split, voices, seed in conditions:
        specs = conversation_specs(bank, split, voices, args.n, seed, build_cfg.turns)
        rendered = [render(s["items"], s["voice"], synth, s["seed"], build_cfg.duration,
                           flaws=flaws, model_voice=MODEL_VOICE) for s in specs]
        res = probe(model, assets, rendered, build_cfg.duration)
        print(f"| {name} | {res['answer'][0]:.2f} (n={res['answer'][1]}) | "
              f"{res['key_word'][0]:.2f} (n={res['key_word'][1]}) |")


if __name__ == "__main__":
    main()
