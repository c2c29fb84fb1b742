"""SimPO (Meng et al., NeurIPS 2024, arXiv 2405.14734), reference-free and length-normalised.

    loss = -log sigma(beta * (L_w / |y_w| - L_l / |y_l|) - gamma),   L = log pi(y) (no reference).

Paper settings beta 2.5, gamma 1.375. Rewards: beta * L / |y|.
"""

from __future__ import annotations

import torch.nn.functional as F

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("simpo")
def simpo(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Reference-free length-normalised margin loss; see module docstring."""
    aw = lp.policy_chosen / lp.chosen_len
    al = lp.policy_rejected / lp.rejected_len
    loss = -F.logsigmoid(p.beta * (aw - al) - p.gamma)
    return LossOutput(loss, (p.beta * aw).detach(), (p.beta * al).detach())
