"""`duplexalign sandbox build`: build the sandbox's assets (tokenizer, codec, instruct model).

Example: `duplexalign sandbox build --out src/duplexalign/sandbox/assets --set sandbox.build.seed=0`.
"""

from __future__ import annotations

import argparse
import json

from duplexalign.cli.common import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="build the embedded sandbox's assets")
    ssub = p.add_subparsers(dest="sandbox_command", metavar="ACTION")
    b = ssub.add_parser("build", help="render the flawed-policy corpus, fit tokenizer + codec, "
                                      "SFT the instruct model")
    b.add_argument("--out", default=None,
                   help="assets folder (default: the package's sandbox/assets)")
    add_config_args(b)
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from duplexalign.config import split_overrides
    from duplexalign.sandbox.build import ASSETS_DIR, build
    from duplexalign.sandbox.demo import demo_config

    split_overrides(args.overrides, ["sandbox"])  # only sandbox.* is read here
    cfg = demo_config(args.config, args.overrides)
    record = build(cfg.build, Path(args.out) if args.out else ASSETS_DIR)
    print(json.dumps({k: record[k] for k in ("corpus_flaw_rates", "num_params", "seconds")},
                     indent=2))
    return 0
