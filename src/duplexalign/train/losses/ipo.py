"""IPO (Azar et al., AISTATS 2024, arXiv 2310.12036), length-normalised as in TRL.

    loss = (r_w / |y_w| - r_l / |y_l| - 1 / (2 * beta))^2.

beta plays IPO's tau (values 0.01-1). Rewards: beta * r / |y|.
"""

from __future__ import annotations

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("ipo")
def ipo(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Squared-margin IPO; see module docstring."""
    rw = lp.chosen_logratio / lp.chosen_len
    rl = lp.rejected_logratio / lp.rejected_len
    loss = (rw - rl - 1.0 / (2.0 * p.beta)) ** 2
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
