"""`duplexalign demo`: run the whole alignment loop on the embedded sandbox (offline, CPU).

Examples: `duplexalign demo --out runs/demo`, `duplexalign demo --quick`,
`duplexalign demo --judge oracle --pairs timing --loss simpo`, `duplexalign demo --rounds 3`,
`duplexalign demo --judge oracle --method grpo` (online GRPO instead of DPO on pairs),
`duplexalign demo --quick --set train.lr=2e-5 --set sandbox.deploy.conversations=64`.
The flags are shortcuts for the preset's stage sections (`--judge` sets `annotate.judge` and GRPO's
content judge `train.grpo.judge`, which then uses annotate's endpoint and options, `--loss` the
preference term of `train.loss`, `--pairs` the categories of `pairs.strategy_for`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from duplexalign.cli.common import add_config_args

REPO_CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole loop on the sandbox: deploy, annotate, pairs, "
                                    "streams, train, held-out before/after table")
    p.add_argument("--out", default="runs/demo", help="output folder (resumable)")
    p.add_argument("--quick", action="store_true",
                   help="the small preset CI runs (configs/sandbox_quick.yaml)")
    p.add_argument("--judge", choices=("llm", "oracle"), default=None,
                   help="content judge of annotate and of GRPO's content reward: the LLM of "
                        "annotate.llm (local server unless annotate.llm.url is set) or the "
                        "scenario ground truth (default: the preset's)")
    p.add_argument("--pairs", choices=("mixed", "content", "timing"), default=None,
                   help="pair categories kept (the paper's data ablation)")
    p.add_argument("--loss", choices=("dpo", "dpo_ln", "simpo", "apo_zero"), default=None,
                   help="preference loss (the paper's objective ablation)")
    p.add_argument("--method", choices=("dpo", "grpo"), default=None,
                   help="offline DPO on the loop's pairs (default) or online GRPO on the text "
                        "stream against the simulated users (`train.method`)")
    p.add_argument("--grpo-users", choices=("simulated", "replay"), default=None,
                   help="GRPO's users: the simulated ones (default) or replaying the logs")
    p.add_argument("--rounds", type=int, default=None,
                   help="on-policy rounds: each deploys the current policy on fresh training "
                        "scenarios and trains from it; the held-out table after every round")
    p.add_argument("--reference", choices=("policy", "base"), default=None,
                   help="reference model in rounds after the first: the round's starting "
                        "policy (default) or the base instruct model")
    p.add_argument("--compare-with", action="append", default=None, metavar="DEMO_DIR",
                   help="another demo folder whose held-out table the report shows beside this "
                        "run's (repeatable; same held-out users), e.g. DPO-LN's beside GRPO's")
    add_config_args(p)
    p.set_defaults(func=_demo)


def demo_overrides(args: argparse.Namespace) -> list[str]:
    """The dotted overrides the demo's flags stand for, after the `--set` ones (flags win)."""
    overrides = list(args.overrides)
    if args.judge is not None:  # the same judge for the offline loop and GRPO's content reward
        overrides += [f"annotate.judge={args.judge}", f"train.grpo.judge={args.judge}"]
    if args.method is not None:
        overrides.append(f"train.method={args.method}")
    if args.grpo_users is not None:
        overrides.append(f"sandbox.grpo_users={args.grpo_users}")
    if getattr(args, "compare_with", None):
        overrides.append(f"sandbox.compare_with={json.dumps(args.compare_with)}")
    for key in ("rounds", "reference"):
        if getattr(args, key) is not None:
            overrides.append(f"sandbox.{key}={getattr(args, key)}")
    return overrides


def _demo(args: argparse.Namespace) -> int:
    from duplexalign.sandbox.demo import ablate, load_demo, run

    config = args.config
    if config is None:
        name = "sandbox_quick.yaml" if args.quick else "sandbox.yaml"
        config = REPO_CONFIGS / name if (REPO_CONFIGS / name).exists() else None
    cfg, stages = load_demo(config, demo_overrides(args))
    ablate(stages, pairs=args.pairs, loss=args.loss)
    out = Path(args.out + ("_quick" if args.quick and args.out == "runs/demo" else ""))
    run(cfg, stages, out)
    print((out / "demo_report.md").read_text())
    return 0
