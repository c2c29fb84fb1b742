"""`duplexalign compare A B`: the paper-style before/after table of two evaluation outputs."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `compare` subcommand."""
    p = sub.add_parser("compare", help="before/after table of two `evaluate` outputs",
                       description="Per-benchmark primary metrics of A and B, averages, and B - A "
                       "deltas with paired bootstrap 95 %% intervals.")
    p.add_argument("a", help="baseline evaluation directory (or its results.json)")
    p.add_argument("b", help="candidate evaluation directory (or its results.json)")
    p.add_argument("--out", default=None, help="also write the table (.md) and JSON (.json)")
    p.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from duplexalign.evaluate.compare import compare, load_run, to_markdown
    from duplexalign.runs import atomic_write_text

    cmp = compare(load_run(args.a), load_run(args.b), resamples=args.resamples)
    table = to_markdown(cmp, "A", "B")
    print(f"A = {cmp['a']}\nB = {cmp['b']}\n\n{table}")
    if args.out:
        out = Path(args.out)
        atomic_write_text(out.with_suffix(".md"), table)
        atomic_write_text(out.with_suffix(".json"), json.dumps(cmp, indent=2))
    return 0
