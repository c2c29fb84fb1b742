"""`duplexalign run --config P --out RUN [--stages a,b]`: the whole pipeline into one run directory.

Example: `duplexalign run --config configs/sandbox_quick.yaml --out runs/q --set
ingest.input=runs/demo_quick/logs/index.jsonl --stages ingest,annotate,pairs`.
"""

from __future__ import annotations

import argparse
import json
import sys

from duplexalign.cli.common import (
    add_config_args,
    add_engine_args,
    engine_overrides,
    preset_defaults,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    from duplexalign.pipeline import DEFAULT_STAGES, STAGES

    p = sub.add_parser("run", help="run the pipeline (ingest ... train, report) over the preset's "
                                   "top-level stage sections",
                       description="Run the stages in order into RUN, each from its own top-level "
                                   "section of the preset. A stage already done with the same "
                                   "config and inputs is skipped, so a rerun after a change "
                                   "reruns only what depends on it.")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--input", default=None,
                   help="the logs to ingest (default: ingest.input of the preset)")
    p.add_argument("--stages", default=None,
                   help=f"comma-separated subset of {','.join(STAGES)} "
                        f"(default: {','.join(DEFAULT_STAGES)})")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load every stage's config, run the stages and print their counts."""
    from duplexalign import pipeline

    stages = pipeline.parse_stages(args.stages)
    engine = engine_overrides(args, tuple(s for s in stages if s in pipeline.ENGINE_STAGES))
    configs = pipeline.load_configs(args.config, [*args.overrides, *engine], stages,
                                    preset_defaults(args.config))
    if args.input is not None and "ingest" in configs:
        configs["ingest"].input = args.input
    stats = pipeline.run(configs, args.out, stages)
    print(json.dumps({s: {**st.to_dict()["counts"], **({"skipped": True} if st.skipped else {})}
                      for s, st in stats.items()}, indent=2))
    if "pairs" in stats and not stats["pairs"].counts.get("written"):
        print(f"error: run: the pairs stage wrote 0 pairs (see {args.out}/pairs/dropped.jsonl.gz)",
              file=sys.stderr)
        return 1
    return 0
