"""SFT / NLL anchor on the chosen window (RPO, Pang et al. 2024, arXiv 2404.19733; "ftx").

    loss = -L_w / |y_w|   (mean negative log-likelihood per frame of the chosen text).

Added to a preference loss with a weight (about 1) it widened the safe range of steps in the sandbox
probe. Rewards: beta * r / |y| (reported only).
"""

from __future__ import annotations

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("sft")
def sft(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Mean NLL of the chosen window; see module docstring."""
    loss = -lp.policy_chosen / lp.chosen_len
    rw = lp.chosen_logratio / lp.chosen_len
    rl = lp.rejected_logratio / lp.rejected_len
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
