"""The `duplexalign` entry point: argument parsing only.

Owns the top-level parser and the exit-code contract. Each subcommand lives in its own module in this
package and exposes `register(subparsers)`, which adds its parser and sets `func` to a thin wrapper that
loads the config and calls the stage's library function; it returns 0 only when the stage did its job.
Modules are discovered in this package, so adding a subcommand is adding a file. Every error a user can
cause (bad arguments, config, input, a stage run out of order, an unwritable path) is one line on stderr
and exit code 2; an unexpected error is one line and exit code 1 (`-v` shows its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from duplexalign import __version__
from duplexalign.errors import DuplexAlignError, one_line


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"error: {self.prog}: {one_line(Exception(message))} "
                     f"(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand found in `duplexalign.cli`."""
    parser = OneLineParser(
        prog="duplexalign",
        description="Align full-duplex spoken dialogue models from logs of user interactions.",
    )
    parser.add_argument("--version", action="version", version=f"duplexalign {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, libraries' INFO lines included")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import duplexalign.cli as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        if mod in ("main", "common"):
            continue
        module = importlib.import_module(f"duplexalign.cli.{mod}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    """duplexalign's own INFO lines on the terminal; libraries' (httpx logs every request,
    faster-whisper every file) only from WARNING up, unless `-v` shows everything at DEBUG."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("duplexalign").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for user errors)."""
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        print("error: duplexalign: a COMMAND is required (see `duplexalign --help`)",
              file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except DuplexAlignError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the user gave: missing, a file for a folder, no permission
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {one_line(Exception(e.strerror or e))}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
    except Exception as e:
        if args.verbose:
            raise
        print(f"error: internal error {type(e).__name__}: {one_line(e)} (rerun with -v for the "
              "traceback; please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
