"""`duplexalign annotate RUN`: find timing and content issues in every conversation of a run."""

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
    """Add the `annotate` subcommand."""
    p = sub.add_parser("annotate", help="timing rules + LLM judge -> annotations.jsonl.gz",
                       description="Apply the timing rules and the content judge to every model "
                                   "reply of RUN/conversations.jsonl.gz. Without --judge-url the "
                                   "offline local llama-server is started on 127.0.0.1. Reruns "
                                   "resume and retry judge failures.")
    p.add_argument("run", help="run directory written by `duplexalign ingest --out`")
    p.add_argument("--judge", default=None, help='content judge name, or "none" for timing only')
    p.add_argument("--judge-url", default=None,
                   help="OpenAI-compatible base URL, e.g. http://host:8000/v1 (vLLM, Ollama, ...)")
    p.add_argument("--judge-model", default=None,
                   help='model name at --judge-url; locally "qwen", "smollm2" or a .gguf path')
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the config, run the annotate stage and print its counts."""
    from duplexalign.annotate.stage import AnnotateConfig, run

    overrides = list(args.overrides)
    for flag, key in ((args.judge, "judge"), (args.judge_url, "llm.url"),
                      (args.judge_model, "llm.model")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.no_progress:
        overrides.append("progress=false")
    cfg = load_stage_config(AnnotateConfig, "annotate", args, overrides + engine_overrides(args))
    stats = run(cfg, args.run)
    print_stats(stats, args.run)
    pending = stats.values.get("judge_failures_pending", 0)
    if pending:
        convs = stats.counts.get("conversations/failed", 0)
        print(f"error: annotate: {pending} judge call(s) failed in {convs} conversation(s), first: "
              f"{stats.values.get('first_failure')}; rerun to retry them "
              f"(see {args.run}/annotate_failures.jsonl)", file=sys.stderr)
        return 1
    return 0
