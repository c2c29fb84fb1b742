"""`duplexalign report RUN`: write report.md and a self-contained report.html for a run directory."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    p = sub.add_parser("report", help="report.md + report.html (plots embedded) for a run",
                       description="Training curves, reward margins, issue counts, timing "
                       "histograms, the before/after table and timelines of the worst samples; "
                       "sections whose inputs are missing say so.")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="output directory (default: RUN)")
    p.add_argument("--worst", type=int, default=4, help="timelines of this many worst samples")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from duplexalign.report.stage import ReportConfig, run

    stats = run(ReportConfig(worst=args.worst), args.run, args.out)
    print(f"report: {stats.values.get('html')} ({dict(stats.counts)})")
    return 0
