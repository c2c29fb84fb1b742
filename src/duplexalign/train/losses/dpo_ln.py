"""DPO-LN, length-normalised DPO (Wu et al., ICML 2025, arXiv 2506.21463; SimPO appendix; Tulu 3).

    loss = -log sigma(beta * (r_w / |y_w| - r_l / |y_l|)).

|y| is the window length in frames including PAD (default) or the non-pad token count, chosen in
`train.length_norm`. The default loss of duplexalign; the paper uses beta 0.3 on Moshi's text
stream. Rewards: beta * r / |y|.
"""

from __future__ import annotations

import torch.nn.functional as F

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


@LOSSES.register("dpo_ln")
def dpo_ln(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """Length-normalised DPO; see module docstring."""
    rw = lp.chosen_logratio / lp.chosen_len
    rl = lp.rejected_logratio / lp.rejected_len
    loss = -F.logsigmoid(p.beta * (rw - rl))
    return LossOutput(loss, (p.beta * rw).detach(), (p.beta * rl).detach())
