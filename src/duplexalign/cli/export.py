"""`duplexalign export RUN --out DIR`: write the run's trained model as moshi loads it.

Example: `duplexalign export runs/r1 --out exports/r1`, then
`python -m moshi.server --moshi-weight exports/r1/merged/model.safetensors --config-path
exports/r1/merged/config.json` (the exact command lines are in `exports/r1/export.json`).
"""

from __future__ import annotations

import argparse
import json


def _main(args: argparse.Namespace) -> int:
    from duplexalign.train.export import export_run

    info = export_run(args.run, args.out, args.which)
    print(json.dumps(info, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` subcommand."""
    p = sub.add_parser("export", help="export RUN's trained model: merged weights and LoRA "
                       "adapters + config.json for moshi.server / get_moshi_lm")
    p.add_argument("run", help="run directory (reads RUN/train)")
    p.add_argument("--out", required=True, help="output folder (merged/, lora/, export.json)")
    p.add_argument("--which", choices=["auto", "best", "final", "latest"], default="auto",
                   help="best/ if present, else final/, else the latest checkpoint (default)")
    p.set_defaults(func=_main)
