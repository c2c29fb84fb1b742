"""Each loss against numbers worked out by hand.

Shared example (one pair): policy chosen -10, rejected -14; reference chosen -12, rejected -12;
|y_w| = 4, |y_l| = 8. So r_w = -10 - (-12) = 2, r_l = -14 - (-12) = -2, per frame 0.5 and -0.25.
"""

from __future__ import annotations

import math

import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.train.losses import LOSSES, LossParams, PreferenceLogps, combined_loss


def _lp() -> PreferenceLogps:
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    return PreferenceLogps(t(-10.0), t(-14.0), t(-12.0), t(-12.0), t(4.0), t(8.0))


def _softplus(x: float) -> float:  # -log sigma(-x) = log(1 + e^x)
    return math.log1p(math.exp(x))


P = LossParams(beta=0.5, label_smoothing=0.1, gamma=0.5, orpo_lambda=0.1)


@pytest.mark.parametrize("name,expected,rw,rl", [
    # dpo: z = 0.5 * (2 - (-2)) = 2; loss = log(1 + e^-2); rewards 0.5*2, 0.5*(-2)
    ("dpo", _softplus(-2.0), 1.0, -1.0),
    # dpo_ln: z = 0.5 * (0.5 - (-0.25)) = 0.375; rewards 0.25, -0.125
    ("dpo_ln", _softplus(-0.375), 0.25, -0.125),
    # ipo: (0.75 - 1/(2*0.5))^2 = (-0.25)^2
    ("ipo", 0.0625, 0.25, -0.125),
    # cdpo: 0.9 * log(1+e^-2) + 0.1 * log(1+e^2)
    ("cdpo", 0.9 * _softplus(-2.0) + 0.1 * _softplus(2.0), 1.0, -1.0),
    # hinge: max(0, 1 - 0.5 * 4) = 0
    ("hinge", 0.0, 1.0, -1.0),
    # simpo: a_w = -10/4 = -2.5, a_l = -14/8 = -1.75; z = 0.5*(-0.75) - 0.5 = -0.875
    ("simpo", _softplus(0.875), -1.25, -0.875),
    # apo_zero: (1 - sigma(1)) + sigma(-1) = 2 * sigma(-1)
    ("apo_zero", 2.0 / (1.0 + math.e), 1.0, -1.0),
    # sft: -(-10) / 4
    ("sft", 2.5, 0.25, -0.125),
])
def test_loss_hand_computed(name, expected, rw, rl):
    out = LOSSES.get(name)(_lp(), P)
    assert out.loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert out.chosen_rewards.item() == pytest.approx(rw)
    assert out.rejected_rewards.item() == pytest.approx(rl)


def test_orpo_hand_computed():
    # a_w = -2.5, a_l = -1.75; log odds(a) = a - log(1 - e^a)
    lo_w = -2.5 - math.log(1 - math.exp(-2.5))
    lo_l = -1.75 - math.log(1 - math.exp(-1.75))
    expected = 2.5 + 0.1 * _softplus(-(lo_w - lo_l))
    assert LOSSES.get("orpo")(_lp(), P).loss.item() == pytest.approx(expected, rel=1e-9)


def test_hinge_active_and_combined():
    p = LossParams(beta=0.1)
    # hinge: 1 - 0.1 * 4 = 0.6
    assert LOSSES.get("hinge")(_lp(), p).loss.item() == pytest.approx(0.6)
    both = combined_loss({"dpo_ln": 1.0, "sft": 0.5}, _lp(), P)
    assert both.loss.item() == pytest.approx(_softplus(-0.375) + 0.5 * 2.5)
    assert both.chosen_rewards.item() == pytest.approx(0.25)  # rewards of the first term


def test_unknown_loss_suggests():
    with pytest.raises(ConfigError, match="dpo_ln"):
        LOSSES.get("dpo_nl")


def test_dpo_gradient_direction():
    lp = _lp()
    lp.policy_chosen.requires_grad_(True)
    LOSSES.get("dpo_ln")(lp, P).loss.sum().backward()
    assert lp.policy_chosen.grad.item() < 0  # raising chosen log-prob lowers the loss
