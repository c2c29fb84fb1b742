"""Subprocess entry of the resume and distributed tests: `python train_script.py STREAMS OUT JSON`.

JSON holds TrainConfig fields plus optional `kill_at` (the process SIGKILLs itself in a validation
callback at that step, i.e. mid-run between checkpoints).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch

torch.set_num_threads(1)
os.environ.setdefault("NO_TORCH_COMPILE", "1")

from duplexalign.train.stage import TrainConfig, fit  # noqa: E402


def main() -> None:
    streams, out, raw = sys.argv[1:4]
    opts = json.loads(raw)
    kill_at = opts.pop("kill_at", None)

    def killer(model, step):
        if kill_at is not None and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"probe": 0.0}

    cfg = TrainConfig.model_validate(opts)
    fit(cfg, streams, out, validators=[killer])


if __name__ == "__main__":
    main()
