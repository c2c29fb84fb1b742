"""cDPO, conservative (label-smoothed) DPO (Mitchell, 2023 note; in OpenRLHF, torchtune).

    loss = -(1 - eps) * log sigma(beta * d) - eps * log sigma(-beta * d),   d = r_w - r_l (sums).

eps = `label_smoothing` in [0, 0.5), about 0.1 for noisy AI-judge labels. Rewards: beta * r.
"""

from __future__ import annotations

import torch.nn.functional as F

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("cdpo")
def cdpo(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Label-smoothed DPO; see module docstring."""
    rw, rl = lp.chosen_logratio, lp.rejected_logratio
    z = p.beta * (rw - rl)
    eps = p.label_smoothing
    loss = -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
