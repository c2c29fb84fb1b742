"""`duplexalign evaluate CHECKPOINT --tasks a,b --out DIR`: argument parsing for the evaluate stage."""

from __future__ import annotations

import argparse

from duplexalign.cli.common import (
    add_config_args,
    add_engine_args,
    engine_overrides,
    load_stage_config,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    p = sub.add_parser("evaluate", help="roll a checkpoint out on spoken benchmarks and score it",
                       description="Streaming full-duplex evaluation: spoken QA, safety, reply "
                       "length, timing and multi-turn tasks; writes results.json, per-sample "
                       "JSONL and two-channel wavs.")
    p.add_argument("checkpoint", help="model directory written by the trainer (save_model)")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks or groups (spoken_qa, safety, paper); "
                        "`duplexalign evaluate --list` shows them")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--limit", type=int, default=None, help="at most N prompts per task")
    p.add_argument("--list", action="store_true", help="list the tasks and exit")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from duplexalign.evaluate.stage import EvaluateConfig, run
    from duplexalign.evaluate.tasks import TASK_GROUPS, TASKS

    if args.list:
        print("tasks: " + ", ".join(TASKS.names()))
        print("groups: " + ", ".join(f"{k} = {'+'.join(v)}" for k, v in TASK_GROUPS.items()))
        return 0
    overrides = list(args.overrides)
    if args.tasks:
        overrides.append(f"tasks={args.tasks}")
    if args.limit:
        overrides.append(f"limit={args.limit}")
    cfg = load_stage_config(EvaluateConfig, "evaluate", args, overrides + engine_overrides(args))
    cfg.checkpoint = args.checkpoint
    stats = run(cfg, args.out)
    print(f"evaluate: {dict(stats.counts)} -> {args.out}/results.json")
    return 0
