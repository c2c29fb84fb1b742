"""Hinge loss of SLiC-HF / RSO (Zhao et al. 2023, arXiv 2305.10425; Liu et al. 2023, 2309.06657).

    loss = max(0, 1 - beta * (r_w - r_l))   (summed log-ratios; 1/beta is the margin).

Rewards: beta * r.
"""

from __future__ import annotations

import torch

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("hinge")
def hinge(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Hinge on the reward margin; see module docstring."""
    rw, rl = lp.chosen_logratio, lp.rejected_logratio
    loss = torch.relu(1 - p.beta * (rw - rl))
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
