"""GRPO arithmetic: group advantages, speak/silence projection, clipped loss with the k3 KL."""

from __future__ import annotations

import math

import pytest
import torch

from duplexalign.train.grpo_loss import decision_logprobs, group_advantages, policy_loss


def test_group_advantages_are_normalised_within_each_group():
    r = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    a = group_advantages(r)
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert a[0].tolist() == pytest.approx([-1 / s, 0.0, 1 / s], abs=1e-3)
    assert a[1].tolist() == [0.0, 0.0, 0.0]  # no signal in a group that scored the same
    assert group_advantages(r, scale=False)[0].tolist() == [-1.0, 0.0, 1.0]


def test_decision_logprobs_project_on_pad():
    logits = torch.zeros(1, 2, 4)  # uniform over 4 ids: p(PAD = 3) = 0.25
    tokens = torch.tensor([[3, 1]])  # silence, then speech
    lp = decision_logprobs(logits, tokens)
    assert lp[0].tolist() == pytest.approx([math.log(0.25), math.log(0.75)])
    # EPAD (0) announces a word: a speak decision
    assert decision_logprobs(logits, torch.tensor([[0, 0]]))[0, 0] == pytest.approx(math.log(0.75))


def test_on_policy_loss_is_minus_advantage_plus_beta_k3():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.25]]))
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = policy_loss(logp, logp, ref, torch.tensor([2.0]), mask, 0.2, 0.1)
    # frame 0: d = ln .25 - ln .5 = -ln 2, k3 = e^d - d - 1 = 0.5 + ln 2 - 1; frame 1: k3 = 0
    k3 = 0.5 + math.log(2) - 1
    assert out.loss.item() == pytest.approx(-2.0 + 0.1 * k3 / 2)
    assert out.kl.item() == pytest.approx(k3 / 2)
    assert out.clip_frac.item() == 0.0


def test_clipping_keeps_the_pessimistic_term():
    old = torch.log(torch.tensor([[0.2]]))
    new = torch.log(torch.tensor([[0.3]]))  # ratio 1.5
    mask = torch.ones(1, 1, dtype=torch.bool)
    up = policy_loss(new, old, new, torch.tensor([1.0]), mask, 0.2, 0.0)
    down = policy_loss(new, old, new, torch.tensor([-1.0]), mask, 0.2, 0.0)
    assert up.loss.item() == pytest.approx(-1.2)  # min(1.5, 1.2) * 1
    assert down.loss.item() == pytest.approx(1.5)  # min(-1.5, -1.2)
    assert up.clip_frac.item() == 1.0


def test_gradient_on_policy_is_minus_advantage_per_valid_frame():
    logp = torch.log(torch.tensor([[0.5, 0.4, 0.3]])).requires_grad_(True)
    mask = torch.tensor([[True, True, False]])  # the padded frame gets nothing
    out = policy_loss(logp, logp.detach(), logp.detach(), torch.tensor([3.0]), mask, 0.2, 0.5)
    out.loss.sum().backward()
    # d/dlogp of -rho * A at rho = 1 is -A; the k3 gradient is 0 at logp = ref; mean over 2 frames
    assert logp.grad[0].tolist() == pytest.approx([-1.5, -1.5, 0.0])
