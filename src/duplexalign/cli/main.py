"""The `duplexalign` entry point: argument parsing only.

Owns the top-level parser. Each subcommand lives in its own module in this package and exposes
`register(subparsers)`, which adds its parser and sets `func` to a thin wrapper that loads the config
and calls the stage's library function. Modules are discovered in this package, so adding a subcommand
is adding a file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from duplexalign import __version__
from duplexalign.errors import DuplexAlignError


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand found in `duplexalign.cli`."""
    parser = argparse.ArgumentParser(
        prog="duplexalign",
        description="Align full-duplex spoken dialogue models from logs of user interactions.",
    )
    parser.add_argument("--version", action="version", version=f"duplexalign {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import duplexalign.cli as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        if mod in ("main", "common"):
            continue
        module = importlib.import_module(f"duplexalign.cli.{mod}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for user errors)."""
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DuplexAlignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
