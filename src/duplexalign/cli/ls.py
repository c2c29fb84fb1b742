"""`duplexalign ls`: list every registry (ingest formats, backends, judges, losses, ...) and its names."""

from __future__ import annotations

import argparse
import importlib

REGISTRY_MODULES = (
    "duplexalign.ingest.base",
    "duplexalign.speech.base",
    "duplexalign.judges.base",
    "duplexalign.pairs.base",
    "duplexalign.train.losses",
    "duplexalign.models.presets",
    "duplexalign.evaluate.tasks",
    "duplexalign.sandbox.oracle",  # registers the `oracle` judge
)
"""Modules that define registries."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `ls` subcommand."""
    p = sub.add_parser("ls", help="list registered components of every kind")
    p.set_defaults(func=main)


def load_registries() -> dict:
    """Import every registry-holding module; returns `registry.all_registries()`."""
    from duplexalign.registry import all_registries

    for mod in REGISTRY_MODULES:
        importlib.import_module(mod)
    return all_registries()


def main(args: argparse.Namespace) -> int:
    """Print each registry kind and its component names."""
    for kind, reg in sorted(load_registries().items()):
        try:
            names = ", ".join(reg.names()) or "(none)"
        except Exception as e:  # noqa: BLE001 - one broken backend module must not hide the others
            names = f"(cannot load: {type(e).__name__}: {e})"
        print(f"{kind}: {names}")
    return 0
