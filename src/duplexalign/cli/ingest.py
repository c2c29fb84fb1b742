"""`duplexalign ingest INPUT --format NAME --out DIR`: parse logs into a run directory."""

from __future__ import annotations

import argparse
import sys

from duplexalign.cli.common import (
    add_config_args,
    add_engine_args,
    engine_overrides,
    load_stage_config,
    print_stats,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `ingest` subcommand."""
    p = sub.add_parser("ingest", help="read two-channel logs into conversations.jsonl.gz",
                       description="Read logs in a registered format (see `duplexalign ls`) into "
                                   "DIR/conversations.jsonl.gz, DIR/quarantine.jsonl.gz and "
                                   "DIR/stats.json. Reruns resume.")
    p.add_argument("input", nargs="?", default=None,
                   help="input file or folder (layout depends on --format; default: ingest.input "
                        "of the config)")
    p.add_argument("--format", default=None,
                   help="reader name: moshi-finetune, fdb, jsonl, audio (default from config)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--keep-user-audio", action="store_true", default=None,
                   help="carry the user's audio forward (dropped by default for privacy)")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the config, run the ingest stage and print its counts."""
    from duplexalign.ingest.base import IngestConfig
    from duplexalign.ingest.stage import run

    overrides = list(args.overrides)
    if args.format:
        overrides.append(f"format={args.format}")
    if args.keep_user_audio:
        overrides.append("keep_user_audio=true")
    cfg = load_stage_config(IngestConfig, "ingest", args, overrides + engine_overrides(args))
    if args.input is not None:
        cfg.input = args.input  # validated on assignment
    stats = run(cfg, args.out)
    print_stats(stats, args.out)
    if not stats.counts.get("conversations"):
        print(f"error: ingest: 0 conversations from {stats.counts.get('read', 0)} input items "
              f"({stats.counts.get('quarantined', 0)} quarantined, reasons in "
              f"{args.out}/quarantine.jsonl.gz)", file=sys.stderr)
        return 1
    return 0
