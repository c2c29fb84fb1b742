"""`duplexalign evaluate CHECKPOINT --tasks a,b --out DIR` (and `--fdb DIR`, `--write-fdb DIR`):
argument parsing for the evaluate stage and its Full-Duplex-Bench front ends."""

from __future__ import annotations

import argparse

from duplexalign.cli.common import (
    add_config_args,
    add_engine_args,
    engine_overrides,
    load_stage_config,
)
from duplexalign.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    p = sub.add_parser("evaluate", help="roll a checkpoint out on spoken benchmarks and score it",
                       description="Streaming full-duplex evaluation: spoken QA, safety, reply "
                       "length, timing and multi-turn tasks; writes results.json, per-sample "
                       "JSONL and two-channel wavs. With --fdb DIR (no checkpoint) it scores any "
                       "model's outputs laid out as Full-Duplex-Bench expects and prints FDB's "
                       "table; --write-fdb DIR writes the run's timing samples in that layout.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="model directory written by the trainer (save_model); not needed with "
                        "--fdb, or with --write-fdb on a finished run")
    p.add_argument("--tasks", default=None,
                   help="comma-separated tasks or groups (spoken_qa, safety, paper); "
                        "`duplexalign evaluate --list` shows them")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--limit", type=int, default=None, help="at most N prompts per task")
    p.add_argument("--list", action="store_true", help="list the tasks and exit")
    p.add_argument("--fdb", default=None, metavar="DIR",
                   help="score a Full-Duplex-Bench folder (input.wav, output.wav, output.json, "
                        "task side files) produced by any model; results go to OUT/fdb/")
    p.add_argument("--fdb-task", default=None,
                   choices=("pause_handling", "backchannel", "smooth_turn_taking",
                            "user_interruption", "v1.5"),
                   help="with --fdb: the task of every sample (default: from the side files)")
    p.add_argument("--no-judge", action="store_true",
                   help="with --fdb: leave out the LLM-judged columns (relevance, behaviour)")
    p.add_argument("--write-fdb", default=None, metavar="DIR",
                   help="write the run's timing samples (OUT/timing) as FDB sample folders in DIR "
                        "(after evaluating CHECKPOINT when one is given)")
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
    if args.fdb:
        from duplexalign.evaluate.fdb.folder import score_folder

        result = score_folder(args.fdb, args.out, cfg, task=args.fdb_task,
                              use_judge=not args.no_judge)
        print(result["table"])
        print(f"evaluate --fdb: {args.out}/fdb/results.json")
        return 0
    if args.checkpoint or cfg.checkpoint is not None:
        cfg.checkpoint = args.checkpoint or cfg.checkpoint
        stats = run(cfg, args.out)
        print(f"evaluate: {dict(stats.counts)} -> {args.out}/results.json")
    elif not args.write_fdb:
        raise ConfigError("evaluate: give a CHECKPOINT (or --fdb DIR to score FDB outputs)")
    if args.write_fdb:
        from duplexalign.evaluate.fdb.write import write_fdb

        counts = write_fdb(args.out, args.write_fdb)
        print(f"evaluate --write-fdb: {counts} -> {args.write_fdb}")
    return 0
