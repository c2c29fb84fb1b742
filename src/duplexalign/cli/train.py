"""`duplexalign train RUN`: preference-train the model on RUN/streams, writing RUN/train.

Example: `duplexalign train runs/demo --config configs/sandbox.yaml --set train.loss_params.beta=0.3`.
Launch with `torchrun --nproc_per_node 2 -m duplexalign.cli.main train RUN` for DDP/FSDP.
"""

from __future__ import annotations

import argparse
import json

from duplexalign.cli.common import add_config_args


def _main(args: argparse.Namespace) -> int:
    from duplexalign.config import load_section
    from duplexalign.train.stage import TrainConfig, run_stage

    cfg = load_section(TrainConfig, "train", args.config, args.overrides)
    stats = run_stage(cfg, args.run)
    print(json.dumps(stats.to_dict(), indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = sub.add_parser("train", help="preference-train the model on RUN/streams (DPO-LN default)")
    p.add_argument("run", help="run directory (reads RUN/streams, writes RUN/train)")
    add_config_args(p)
    p.set_defaults(func=_main)
