"""`duplexalign pairs RUN`: build preference pairs inside a run directory (and export them)."""

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
    """Add the `pairs` subcommand."""
    p = sub.add_parser("pairs", help="annotations -> preference pairs (rewrite/retime/insert/voice)",
                       description="Read RUN/conversations.jsonl.gz and RUN/annotations.jsonl.gz, "
                                   "write RUN/pairs.jsonl.gz, RUN/pairs/audio/ and the drops with "
                                   "reasons (RUN/pairs/dropped.jsonl.gz, RUN/stats.json). Reruns "
                                   "resume.")
    p.add_argument("run", help="run directory made by `duplexalign ingest --out`")
    p.add_argument("--voice-transfer", action="store_true",
                   help="re-speak both variants with the alternative model voice")
    p.add_argument("--export-parquet", metavar="FILE",
                   help="also write the pairs as a datasets-loadable parquet file")
    p.add_argument("--export-sft", metavar="DIR",
                   help="also write the chosen clips in the moshi-finetune layout")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the config, run the pairs stage, optionally export, and print the counts."""
    from duplexalign.pairs.config import PairsConfig
    from duplexalign.pairs.stage import run

    overrides = list(args.overrides)
    if args.voice_transfer:
        overrides.append("voice_transfer=true")
    cfg = load_stage_config(PairsConfig, "pairs", args, overrides + engine_overrides(args))
    stats = run(cfg, args.run)
    print_stats(stats, args.run)
    if not stats.counts.get("written"):
        drops = {k: v for k, v in stats.counts.items() if k.startswith("dropped/")}
        top = max(drops, key=drops.get) if drops else None
        why = f"most dropped as {top.split('/', 1)[1]} ({drops[top]})" if top else "no issues"
        print(f"error: pairs: 0 pairs written from {stats.counts.get('built', 0)} built ({why}); "
              f"see {args.run}/pairs/dropped.jsonl.gz", file=sys.stderr)
        return 1
    if args.export_parquet:
        from duplexalign.pairs.export import export_parquet

        print(f"parquet: {export_parquet(args.run, args.export_parquet)} rows -> "
              f"{args.export_parquet}")
    if args.export_sft:
        from duplexalign.pairs.export import export_chosen_moshi_finetune

        counts = export_chosen_moshi_finetune(args.run, args.export_sft)
        print(f"moshi-finetune: {dict(counts)} -> {args.export_sft}")
    return 0
