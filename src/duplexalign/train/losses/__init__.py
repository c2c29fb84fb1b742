"""The preference-loss registry and the one signature every loss shares.

Owns `PreferenceLogps` (policy and reference log-prob sums and lengths of chosen and rejected, each
`[B]`), `LossParams` (beta and the few loss-specific knobs), `LossOutput` (per-example loss and
chosen/rejected implicit rewards, `[B]`), the `LOSSES` registry (one module per loss, registered by
name) and `combined_loss`, which adds several registered losses with weights (e.g. dpo_ln + sft).
A loss never sees tensors of frames: what counts in a sum (PAD frames, per-frame weights) is decided
upstream in `train/logprobs.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict

from duplexalign.registry import Registry


@dataclass
class PreferenceLogps:
    """Log-prob sums over the pair window and their lengths, each `[B]`.

    Attributes:
        policy_chosen: sum of (weighted) per-frame log pi_theta of the chosen text, `[B]`.
        policy_rejected: same for rejected, `[B]`.
        ref_chosen: same under the reference model, `[B]` (no gradient).
        ref_rejected: `[B]`.
        chosen_len: |y_w| used by length-normalised losses (frames incl. PAD, or tokens), `[B]`.
        rejected_len: |y_l|, `[B]`.
    """

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    chosen_len: torch.Tensor
    rejected_len: torch.Tensor

    @property
    def chosen_logratio(self) -> torch.Tensor:
        """r_w = log pi(y_w) - log pi_ref(y_w), `[B]`."""
        return self.policy_chosen - self.ref_chosen

    @property
    def rejected_logratio(self) -> torch.Tensor:
        """r_l, `[B]`."""
        return self.policy_rejected - self.ref_rejected


@dataclass
class LossOutput:
    """Per-example loss `[B]` and implicit rewards of chosen and rejected `[B]` (detached)."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


class LossParams(BaseModel):
    """Knobs shared by the loss family (each loss reads the ones it needs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beta: float = 0.1
    """Inverse temperature of the implicit reward (DPO 0.1; DPO-LN on Moshi 0.3; SimPO 2.5)."""
    label_smoothing: float = 0.1
    """cDPO: assumed rate of flipped labels, in [0, 0.5)."""
    gamma: float = 0.5
    """SimPO target margin."""
    orpo_lambda: float = 0.1
    """ORPO weight of the odds-ratio term."""


LossFn = Callable[[PreferenceLogps, LossParams], LossOutput]

LOSSES: Registry[LossFn] = Registry(
    "preference loss",
    modules=tuple(f"duplexalign.train.losses.{m}" for m in (
        "dpo", "dpo_ln", "ipo", "cdpo", "hinge", "simpo", "apo_zero", "orpo", "sft")),
)


def combined_loss(terms: dict[str, float], lp: PreferenceLogps, params: LossParams) -> LossOutput:
    """Weighted sum of registered losses, e.g. `{"dpo_ln": 1.0, "sft": 1.0}`.

    The rewards reported are those of the first term (the primary preference loss).
    """
    total, first = None, None
    for name, weight in terms.items():
        out = LOSSES.get(name)(lp, params)
        first = first or out
        total = weight * out.loss if total is None else total + weight * out.loss
    if first is None:
        raise ValueError("combined_loss needs at least one term")
    return LossOutput(total, first.chosen_rewards, first.rejected_rewards)
