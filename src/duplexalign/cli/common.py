"""Helpers shared by the subcommand modules: the common `--config` / `--set` options."""

from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Add `--config PRESET.yaml` and repeatable `--set key.path=value` overrides."""
    p.add_argument("--config", default=None, help="YAML preset (one section per stage)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set annotate.judge.concurrency=8 (repeatable)")
