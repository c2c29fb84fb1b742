"""Helpers shared by the subcommand modules: the common `--config` / `--set` options and how a
stage's result is printed."""

from __future__ import annotations

import argparse
import json

from duplexalign.runs import StageStats


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Add `--config PRESET.yaml` and repeatable `--set key.path=value` overrides."""
    p.add_argument("--config", default=None, help="YAML preset (one section per stage)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set annotate.llm.concurrency=8 (repeatable)")


def print_stats(stats: StageStats, where: str) -> None:
    """Print a stage's counts (and that it was skipped, when a finished run was found in `where`)."""
    if stats.skipped:
        print(f"already done in {where} (same config and input)")
    print(json.dumps(stats.to_dict()["counts"], indent=2))
