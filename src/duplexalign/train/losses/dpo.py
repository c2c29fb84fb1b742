"""DPO (Rafailov et al., NeurIPS 2023, arXiv 2305.18290), the Bradley-Terry sigmoid loss.

    loss = -log sigma(beta * (r_w - r_l)),   r = log pi(y) - log pi_ref(y) summed over the window.

Typical beta 0.05-0.5. Rewards: beta * r.
"""

from __future__ import annotations

import torch.nn.functional as F

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("dpo")
def dpo(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Summed-log-prob DPO; see module docstring."""
    rw, rl = lp.chosen_logratio, lp.rejected_logratio
    loss = -F.logsigmoid(p.beta * (rw - rl))
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
