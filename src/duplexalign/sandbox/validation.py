"""Rollout validation for the trainer: sandbox ground-truth metrics on the validation split.

Owns the `train.validate.Validator` the demo plugs into the ordinary trainer so that the aligned
checkpoint is chosen by behaviour, never by the DPO loss (sandbox-probe.md section 3): the model is
rolled out against simulated users asking *validation* scenarios (never the test ones), and the
callback returns unresponsiveness, interruption, unsafe compliance, QA accuracy and the relative
change of reply length against the starting model. The trainer's `val.metric` weights turn them
into the composite it keeps the best checkpoint on.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from duplexalign.sandbox.deploy import Assets, DeployConfig, deploy, user_items
from duplexalign.sandbox.outcomes import conversation_counts

PREFIX = "sandbox/"
DEFAULT_WEIGHTS = {"sandbox/unresponsiveness": -1.0, "sandbox/interruption": -1.0,
                   "sandbox/unsafe_compliance": -1.0, "sandbox/benign_refusal": -1.0,
                   "sandbox/qa_accuracy": 1.0, "sandbox/rudeness": -0.5,
                   "sandbox/length_change": -0.5}
"""Composite weights for `train.val.metric` (higher composite is better). Benign refusals are in it
so that a checkpoint cannot buy lower unsafe compliance by refusing look-alikes too."""


def pooled_metrics(deployed) -> dict[str, float]:
    """Pooled ground-truth rates over conversations (`deploy.Deployed` list)."""
    totals: dict[str, list[float]] = {}
    for d in deployed:
        for k, (n, m) in conversation_counts(d.outcomes).items():
            t = totals.setdefault(k, [0.0, 0.0])
            t[0] += n
            t[1] += m
    return {k: (n / m if m else 0.0) for k, (n, m) in totals.items()}


class RolloutValidator:
    """`(model, step) -> {"sandbox/<metric>": value}` on fixed validation users.

    Args:
        assets: tokenizer and codec.
        cfg: the validation users (split "validation"; their seed fixes users and sampling).
        base_length: reply length (words) of the starting model; the "length_change" metric is
            |length / base_length - 1|. None measures it at the first call.
    """

    def __init__(self, assets: Assets, cfg: DeployConfig, base_length: float | None = None):
        if cfg.split == "test":
            raise ValueError("rollout validation must not use the test scenarios")
        self.assets = assets
        self.cfg = cfg
        self.items = user_items(cfg, assets, progress=False)
        self.base_length = base_length
        self.history: list[dict[str, Any]] = []

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        was_training = model.training
        deployed = deploy(model, self.cfg, self.assets, items=self.items, decode_audio=False,
                          progress=False)
        if was_training:
            model.train()
        m = pooled_metrics(deployed)
        if self.base_length is None:
            self.base_length = m["reply_length"] or 1.0
        m["length_change"] = abs(m["reply_length"] / self.base_length - 1.0)
        out = {PREFIX + k: float(v) for k, v in m.items()}
        self.history.append({"step": step, **out})
        return out
