"""GRPO arithmetic: group advantages, speak/silence projection, clipped loss with the k3 KL."""

from __future__ import annotations

import math

import pytest
import torch

from duplexalign.train.grpo import GRPOConfig, advantages, credit_parts, turn_of_frame
from duplexalign.train.grpo_loss import (
    decision_logprobs,
    frame_advantages,
    group_advantages,
    policy_loss,
    split_logprobs,
    turn_advantages,
)
from duplexalign.train.rewards import TurnTerms, group_totals


def test_group_advantages_are_normalised_within_each_group():
    r = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    a = group_advantages(r)
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert a[0].tolist() == pytest.approx([-1 / s, 0.0, 1 / s], abs=1e-3)
    assert a[1].tolist() == [0.0, 0.0, 0.0]  # no signal in a group that scored the same
    assert group_advantages(r, scale=False)[0].tolist() == [-1.0, 0.0, 1.0]
    # parts scaled by the whole: timing [1, 2, 3] and content [0, 0, 3] of a whole [1, 2, 6]
    whole = torch.tensor([[1.0, 2.0, 6.0]])
    sw = whole.std(unbiased=False).item()  # sqrt(14 / 3)
    t = group_advantages(torch.tensor([[1.0, 2.0, 3.0]]), scale_by=whole, eps=0.0)
    c = group_advantages(torch.tensor([[0.0, 0.0, 3.0]]), scale_by=whole, eps=0.0)
    assert t[0].tolist() == pytest.approx([-1 / sw, 0.0, 1 / sw])
    assert (t + c)[0].tolist() == pytest.approx(group_advantages(whole, eps=0.0)[0].tolist())


def test_decision_logprobs_project_on_pad():
    logits = torch.zeros(1, 2, 4)  # uniform over 4 ids: p(PAD = 3) = 0.25
    tokens = torch.tensor([[3, 1]])  # silence, then speech
    lp = decision_logprobs(logits, tokens)
    assert lp[0].tolist() == pytest.approx([math.log(0.25), math.log(0.75)])
    # EPAD (0) announces a word: a speak decision
    assert decision_logprobs(logits, torch.tensor([[0, 0]]))[0, 0] == pytest.approx(math.log(0.75))


def test_split_logprobs_factor_the_token_into_decision_and_word():
    logits = torch.log(torch.tensor([[[0.1, 0.2, 0.3, 0.4]] * 3]))  # p(PAD = 3) = 0.4
    tokens = torch.tensor([[3, 1, 0]])  # silence, a word piece, EPAD
    rows = split_logprobs(logits, tokens)
    assert rows.shape == (1, 2, 3)
    # decision: log p(PAD) on silence, log(1 - 0.4) on the two speaking frames
    assert rows[0, 0].tolist() == pytest.approx([math.log(0.4), math.log(0.6), math.log(0.6)])
    # word given speech: 0 on silence, p(1) / 0.6 and p(0) / 0.6
    assert rows[0, 1].tolist() == pytest.approx([0.0, math.log(0.2 / 0.6), math.log(0.1 / 0.6)])
    # the two factors add up to the token's log-prob
    assert rows[0].sum(0).tolist() == pytest.approx([math.log(p) for p in (0.4, 0.2, 0.1)])


def test_credit_parts_route_timing_and_content_terms():
    terms = [{"interruption": -1.0, "latency": -0.5, "content": 0.0, "repetition": -0.25},
             {"interruption": 0.0, "latency": 0.0, "content": -1.0, "repetition": 0.0}]
    w = {"interruption": 2.0, "latency": 0.5, "content": 1.0, "repetition": 1.0}
    codes = torch.tensor([[[3, 5, 3]], [[5, 3, 3]]])  # [N=2, R=1, T=3]; PAD = 3
    mask = torch.tensor([[True, True, True], [True, True, False]])
    totals = torch.tensor(group_totals(terms, w, group_size=2)[0], dtype=torch.float64)
    (whole, m), = credit_parts("token", terms, w, totals, codes, mask)
    # every term weighted: -2 - 0.25 - 0.25 = -2.5 and -1
    assert whole.tolist() == [-2.5, -1.0] and m is mask
    (timing, m_t), (content, m_w) = credit_parts("mixed", terms, w, totals, codes, mask)
    assert timing.tolist() == [-2.0 - 0.25, 0.0]  # interruption * 2 + latency * 0.5
    assert content.tolist() == [-0.25, -1.0]  # content + repetition
    assert m_t is mask  # the decision of every valid frame
    assert m_w.tolist() == [[False, True, False], [True, False, False]]  # speaking frames only
    (dec, _), (word, _) = credit_parts("decision+word", terms, w, totals, codes,
                                          mask)
    assert dec.tolist() == [-2.5, -1.0] and word.tolist() == [-0.25, -1.0]  # every term; content


def test_per_turn_credit_gives_each_turns_frames_its_own_advantage():
    # one group (P=1) of G=2 rollouts of one user stream with two turns, windows opening at 0 and
    # at 0.16 s (frame 2 of 80 ms frames). Rollout 0 cuts in during turn 0, rollout 1 is flagged in
    # turn 1: per turn, each is the worse of the two exactly where it erred.
    starts = (0.0, 0.16)
    t0 = {"interruption": -1.0, "content": 0.0}
    t1 = {"interruption": 0.0, "content": -1.0}
    ok = {"interruption": 0.0, "content": 0.0}
    scored = [{"interruption": -0.5, "content": 0.0, "turns": TurnTerms(starts, (t0, ok))},
              {"interruption": 0.0, "content": -0.5, "turns": TurnTerms(starts, (ok, t1))}]
    w = {"interruption": 1.0, "content": 2.0}
    codes = torch.tensor([[[3, 3, 5, 5]], [[3, 5, 5, 3]]])  # [N=2, R=1, T=4]; PAD = 3
    mask = torch.ones(2, 4, dtype=torch.bool)
    totals = torch.tensor([-0.5, -1.0], dtype=torch.float64)
    (per, m), = credit_parts("token", scored, w, totals, codes, mask, per_turn=True)
    assert per.tolist() == [[-1.0, 0.0], [0.0, -2.0]] and m is mask
    assert turn_of_frame(scored, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
    g = GRPOConfig(prompts=1, group_size=2, per_turn=True, rewards={"weights": w})
    (adv, _), = advantages(g, scored, totals, codes, mask)
    # turn 0: rewards (-1, 0) -> centred (-0.5, +0.5), population std 0.5 -> (-1, +1);
    # turn 1: (0, -2) -> (+1, -1); each frame takes its turn's value
    assert torch.allclose(adv, torch.tensor([[-1.0, -1, 1, 1], [1, 1, -1, -1]]), atol=1e-3)
    # whole-rollout credit would blame every frame of rollout 1 (total -1 against -0.5)
    g.per_turn = False
    (flat, _), = advantages(g, scored, totals, codes, mask)
    assert flat.tolist() == pytest.approx([1, -1], abs=1e-3)


def test_turn_advantages_normalise_each_turn_over_the_group():
    r = torch.tensor([[[1.0, 5.0], [3.0, 5.0]]])  # [P=1, G=2, J=2]; turn 1 is a tie
    a = turn_advantages(r)  # turn 0: (1, 3) -> (-1, +1) / (1 + eps)
    assert a[0, :, 0].tolist() == pytest.approx([-1.0, 1.0], abs=1e-3)
    assert a[0, :, 1].tolist() == [0.0, 0.0]
    frames = frame_advantages(a[0], torch.tensor([[1, 0], [0, 0]]))
    assert torch.allclose(frames, torch.tensor([[0.0, -1.0], [1.0, 1.0]]), atol=1e-3)


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
