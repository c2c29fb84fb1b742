"""`duplexalign validate DIR`: re-check an ingest run's conversations and audio; exit 1 on problems."""

from __future__ import annotations

import argparse
from collections import Counter


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `validate` subcommand."""
    p = sub.add_parser("validate", help="re-validate the conversations of a run directory")
    p.add_argument("run_dir", help="run directory written by `duplexalign ingest`")
    p.add_argument("--max-lines", type=int, default=50, help="problems to print (default 50)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print every problem (up to --max-lines) and a count per reason."""
    from pathlib import Path

    from duplexalign.errors import BadInput
    from duplexalign.ingest.recheck import recheck_run

    if not (Path(args.run_dir) / "conversations.jsonl.gz").exists():
        raise BadInput("input_missing", f"{args.run_dir} has no conversations.jsonl.gz")
    problems = recheck_run(args.run_dir)
    for conv_id, p in problems[: args.max_lines]:
        print(f"{conv_id}: {p.reason}: {p.detail}")
    if len(problems) > args.max_lines:
        print(f"... {len(problems) - args.max_lines} more")
    counts = Counter(p.reason for _, p in problems)
    for reason, n in sorted(counts.items()):
        print(f"{reason}: {n}")
    print("ok: no problems" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0
