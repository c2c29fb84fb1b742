"""The learning-rate schedule of every trainer in the package: linear warmup, then cosine to zero.

Owns one function, used by the preference trainer (`stage.fit`) and the SFT loop (`sft.py`), so both
follow the same schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The LR multiplier per optimizer step (for `torch.optim.lr_scheduler.LambdaLR`).

    Steps `0 .. warmup_steps-1` rise linearly to 1 (`(step + 1) / warmup_steps`); then the
    multiplier follows half a cosine from 1 down to 0 at `total_steps` and stays at 0 after.
    """

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f
