"""Helpers shared by the subcommand modules: the common `--config` / `--set` options, loading a
stage's section of a preset, and how a stage's result is printed."""

from __future__ import annotations

import argparse
import json
from typing import Any, TypeVar

from duplexalign.runs import StageStats

C = TypeVar("C")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Add `--config PRESET.yaml` and repeatable `--set key.path=value` overrides."""
    p.add_argument("--config", default=None, help="YAML preset (one section per stage)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set annotate.llm.concurrency=8 (repeatable)")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Add `--engine local|ray` and `--engine-address` (the stage's `engine:` block)."""
    p.add_argument("--engine", choices=("local", "ray"), default=None,
                   help="where the per-conversation work runs: local (default, in this process) "
                        "or ray (an actor pool on a Ray cluster; pip install 'duplexalign[ray]')")
    p.add_argument("--engine-address", default=None, metavar="auto|HOST:PORT|local",
                   help="Ray cluster to use with --engine ray (default auto: the one `ray start "
                        "--head` runs; local: a private one for this run)")


def engine_overrides(args: argparse.Namespace, sections: tuple[str, ...] = ("",)) -> list[str]:
    """`--set` items for `--engine`/`--engine-address`, one per section (`""`: no prefix)."""
    out = []
    for sec in sections:
        pre = f"{sec}." if sec else ""
        if getattr(args, "engine", None):
            out.append(f"{pre}engine.kind={args.engine}")
        if getattr(args, "engine_address", None):
            out.append(f"{pre}engine.address={args.engine_address}")
    return out


def preset_defaults(config: str | None) -> dict[str, dict[str, Any]]:
    """Values under a preset's stage sections: a sandbox preset (one with a `sandbox:` section)
    runs its stages on the sandbox's assets (codec, tokenizer, instruct model); others: none."""
    if not config:
        return {}
    from duplexalign.config import load_yaml

    if "sandbox" not in load_yaml(config):
        return {}
    from duplexalign.sandbox.demo import sandbox_defaults

    return sandbox_defaults(config, [])


def load_stage_config(model: type[C], section: str, args: argparse.Namespace,
                      overrides: list[str] | None = None) -> C:
    """The `section` of `--config` with `--set` (or the given) overrides, over `preset_defaults`."""
    from duplexalign.config import load_section

    return load_section(model, section, args.config,
                        args.overrides if overrides is None else overrides,
                        defaults=preset_defaults(args.config).get(section))


def print_stats(stats: StageStats, where: str) -> None:
    """Print a stage's counts (and that it was skipped, when a finished run was found in `where`)."""
    if stats.skipped:
        print(f"already done in {where} (same config and input)")
    print(json.dumps(stats.to_dict()["counts"], indent=2))
