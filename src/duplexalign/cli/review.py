"""`duplexalign review`: the review web app, and its Label Studio export/import.

Three forms (the first word after `review` picks one):
  `duplexalign review RUN [--host 127.0.0.1] [--port 8765] [--reviewer NAME]` serves the app;
  `duplexalign review export RUN --format label-studio --out DIR` writes Label Studio tasks;
  `duplexalign review import RUN EXPORT.json` reads Label Studio annotations back as decisions.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets

from duplexalign.cli.main import OneLineParser

FORMS = ("export", "import")


def _serve_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="duplexalign review",
                      description="Serve the review app over RUN: listen to conversations, "
                      "confirm / reject / edit found issues, compare pairs, rate conversations. "
                      "Decisions are appended to RUN/review/decisions.jsonl.gz.")
    p.add_argument("run", help="run directory (conversations, annotations, pairs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs the printed "
                        "token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--reviewer", default=None,
                   help="your name in the decisions (default: $USER)")
    return p


def _export_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="duplexalign review export",
                      description="Write RUN's conversations, issue regions and pairs as Label "
                      "Studio tasks (tasks.json, label_config.xml, split-channel audio).")
    p.add_argument("run", help="run directory")
    p.add_argument("--format", choices=("label-studio",), required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--audio-prefix", default="/data/local-files/?d=",
                   help="URL prefix of the audio files in the tasks (default: Label Studio's "
                        "local files, with LOCAL_FILES_DOCUMENT_ROOT at --out's parent)")
    return p


def _import_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="duplexalign review import",
                      description="Read a Label Studio JSON export of tasks made by `review "
                      "export` and append its annotations to RUN/review/decisions.jsonl.gz "
                      "(already imported annotations are skipped).")
    p.add_argument("run", help="run directory")
    p.add_argument("export", help="Label Studio JSON export file")
    return p


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `review` subcommand (its three forms parse the rest of the line themselves)."""
    p = sub.add_parser("review", help="web app to review issues and pairs by ear (and Label "
                       "Studio export/import)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("-h", "--help", action="store_true", help="show the three forms")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="RUN [options] | export ... | import ...")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Dispatch to the form named by the first word."""
    rest = list(args.rest)
    if args.help or not rest or rest[0] in ("-h", "--help"):
        print(__doc__)
        for parser in (_serve_parser(), _export_parser(), _import_parser()):
            print(parser.format_usage().strip())
        return 0
    if rest[0] == "export":
        return _export(_export_parser().parse_args(rest[1:]))
    if rest[0] == "import":
        return _import(_import_parser().parse_args(rest[1:]))
    return _serve(_serve_parser().parse_args(rest))


def find_run(path: str) -> str:
    """`path` when it is a run directory, else the one run directory inside it (`duplexalign
    demo --out DIR` writes its run to DIR/run); several or none is one clear error."""
    from pathlib import Path

    from duplexalign.errors import BadInput
    from duplexalign.runs import CONVERSATIONS

    p = Path(path)
    if (p / CONVERSATIONS).is_file() or not p.is_dir():
        return path
    found = sorted({c.parent for pattern in (f"run/{CONVERSATIONS}", f"*/run/{CONVERSATIONS}")
                    for c in p.glob(pattern)})
    if len(found) == 1:
        print(f"review: {path} holds one run: {found[0]}")
        return str(found[0])
    if found:
        raise BadInput("several_runs", f"{path} holds several runs; give one of: "
                       + ", ".join(str(f) for f in found))
    return path


def _serve(a: argparse.Namespace) -> int:
    try:
        import uvicorn

        from duplexalign.review.app import LOOPBACK, create_app
    except ImportError as e:
        from duplexalign.errors import BackendUnavailable

        raise BackendUnavailable("review", 'pip install -e ".[review]"', str(e)) from e

    a.run = find_run(a.run)
    reviewer = a.reviewer or os.environ.get("USER") or getpass.getuser() or "reviewer"
    token = None if a.host in LOOPBACK else secrets.token_urlsafe(24)
    app = create_app(a.run, reviewer=reviewer, host=a.host, port=a.port, token=token)
    shown = f"[{a.host}]" if ":" in a.host else a.host
    url = f"http://{shown}:{a.port}/" + (f"?token={token}" if token else "")
    print(f"review: {a.run} as {reviewer!r} at {url}", flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")
    return 0


def _export(a: argparse.Namespace) -> int:
    from duplexalign.review.labelstudio import export_tasks

    a.run = find_run(a.run)
    counts = export_tasks(a.run, a.out, audio_prefix=a.audio_prefix)
    print(f"label-studio: {dict(counts)} -> {a.out}/tasks.json (labeling config: "
          f"{a.out}/label_config.xml)")
    return 0


def _import(a: argparse.Namespace) -> int:
    from duplexalign.review.labelstudio import import_annotations

    a.run = find_run(a.run)
    counts = import_annotations(a.run, a.export)
    print(f"label-studio import: {dict(counts)} -> {a.run}/review/decisions.jsonl.gz")
    return 0
