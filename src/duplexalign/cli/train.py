"""`duplexalign train RUN`: preference-train the model on RUN/streams, writing RUN/train.

Example: `duplexalign train runs/demo/run --config configs/sandbox.yaml --set train.loss_params.beta=0.3`
(the preset's `train:` section, on the sandbox's instruct model since the preset is a sandbox one).
Launch with `torchrun --nproc_per_node 2 -m duplexalign.cli.main train RUN` for DDP/FSDP.
Plan first: `duplexalign train RUN --config configs/moshi_7b.yaml --dry-run --world-size 8`.
Online GRPO replaying the run's logged users instead of DPO on RUN/streams:
`duplexalign train RUN --config configs/sandbox.yaml --set train.method=grpo` (`train.grpo.*`);
its content reward from annotate's LLM judge, here at a big endpoint: `--set train.grpo.judge=llm
--set train.grpo.llm.url=http://gpu-box:8000/v1 --set train.grpo.llm.model=NAME` (unset
`train.grpo.llm`: the endpoint and options RUN was annotated with).
"""

from __future__ import annotations

import argparse
import json
import os

from duplexalign.cli.common import add_config_args, load_stage_config


def _main(args: argparse.Namespace) -> int:
    from duplexalign.train.stage import TrainConfig, run

    cfg = load_stage_config(TrainConfig, "train", args, args.overrides)
    if args.dry_run and cfg.method == "grpo":
        from duplexalign.errors import ConfigError

        raise ConfigError("--dry-run plans train.method=dpo only (GRPO's memory is that of its "
                          "rollout batch: train.grpo.rollout_batch)")
    if args.dry_run:
        from duplexalign.train.plan import plan_train

        world = args.world_size or int(os.environ.get("WORLD_SIZE", "1"))
        plan = plan_train(cfg, args.run, world, args.context, args.window)
        print(f"model {cfg.preset().name}, world size {world} ({cfg.distributed} if > 1), "
              f"LoRA {'rank ' + str(cfg.preset().lora.rank) if cfg.preset().lora.enabled else 'off'}")
        print(plan.table())
        return 0
    stats = run(cfg, args.run)
    print(json.dumps(stats.to_dict(), indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = sub.add_parser("train", help="preference-train the model on RUN/streams (DPO-LN default), or "
                                     "online GRPO replaying RUN's users (train.method=grpo)")
    p.add_argument("run", help="run directory (reads RUN/streams, writes RUN/train)")
    add_config_args(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print total/trainable parameters and the estimated memory per GPU "
                        "(weights, gradients, optimizer, activations, reference cache); train "
                        "nothing")
    p.add_argument("--world-size", type=int, default=None,
                   help="GPUs to plan for with --dry-run (default: $WORLD_SIZE or 1)")
    p.add_argument("--context", type=int, default=None,
                   help="context frames per pair for --dry-run (default: RUN/streams, else 1000)")
    p.add_argument("--window", type=int, default=None,
                   help="window frames per pair for --dry-run (default: RUN/streams, else 125)")
    p.set_defaults(func=_main)
