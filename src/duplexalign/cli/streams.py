"""`duplexalign streams RUN`: tokenize the pairs of a run directory into shards for training."""

from __future__ import annotations

import argparse

from duplexalign.cli.common import (
    add_config_args,
    add_engine_args,
    engine_overrides,
    load_stage_config,
    print_stats,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `streams` subcommand."""
    p = sub.add_parser("streams", help="pairs -> 1+2K-row token shards (text PAD/EPAD + codes)",
                       description="Read RUN/pairs.jsonl.gz and write RUN/streams/ (safetensors "
                                   "shards, index.jsonl.gz, meta.json). Reruns resume.")
    p.add_argument("run", help="run directory with pairs.jsonl.gz")
    p.add_argument("--codec", default=None, help="codec registry name (melrvq, mimi)")
    p.add_argument("--codec-path", default=None, help="local codec file")
    p.add_argument("--tokenizer", default=None, help="SentencePiece .model file")
    add_config_args(p)
    add_engine_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Load the config, run the streams stage and print its counts."""
    from duplexalign.streams.stage import StreamsConfig, run

    overrides = list(args.overrides)
    for key, val in (("codec", args.codec), ("codec_path", args.codec_path),
                     ("tokenizer", args.tokenizer)):
        if val is not None:
            overrides.append(f"{key}={val}")
    cfg = load_stage_config(StreamsConfig, "streams", args, overrides + engine_overrides(args))
    stats = run(cfg, args.run)
    print_stats(stats, args.run)
    return 0
