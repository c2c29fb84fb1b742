"""ORPO, odds-ratio preference optimisation (Hong et al., EMNLP 2024, arXiv 2403.07691).

    a = L / |y| (mean log-prob per frame),  log odds(y) = a - log(1 - exp(a)),
    loss = -a_w - lambda * log sigma(log odds(y_w) - log odds(y_l)).

Reference-free; lambda = `orpo_lambda` (about 0.1). Rewards: beta * a.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from duplexalign.train.losses import LOSSES, LossOutput, LossParams, PreferenceLogps


def _log_odds(a: torch.Tensor) -> torch.Tensor:
    a = a.clamp(max=-1e-6)
    return a - torch.log(-torch.expm1(a))


@LOSSES.register("orpo")
def orpo(lp: PreferenceLogps, p: LossParams) -> LossOutput:
    """NLL of chosen plus odds-ratio term; see module docstring."""
    aw = lp.policy_chosen / lp.chosen_len
    al = lp.policy_rejected / lp.rejected_len
    loss = -aw - p.orpo_lambda * F.logsigmoid(_log_odds(aw) - _log_odds(al))
    return LossOutput(loss, (p.beta * aw).detach(), (p.beta * al).detach())
