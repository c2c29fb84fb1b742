"""APO-zero, anchored preference optimisation (D'Oosterlinck et al. 2024, arXiv 2408.06266).

    loss = (1 - sigma(beta * r_w)) + sigma(beta * r_l)

raises the chosen likelihood and lowers the rejected one (use when chosen beats the model). Compared
on Moshi by Wu et al. 2025. Rewards: beta * r.
"""

from __future__ import annotations

import torch

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("apo_zero")
def apo_zero(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Anchored loss; see module docstring."""
    rw, rl = lp.chosen_logratio, lp.rejected_logratio
    loss = (1 - torch.sigmoid(p.beta * rw)) + torch.sigmoid(p.beta * rl)
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
