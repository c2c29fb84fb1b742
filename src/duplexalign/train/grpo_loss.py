"""GRPO's arithmetic: group-relative advantages, speak/silence projection, clipped loss with KL.

Owns the pure tensor functions of online GRPO on the text stream (DeepSeekMath, arXiv 2402.03300):
advantages normalised within the G rollouts of one user stream (of the whole rollout, or of each
user turn's window of frames for per-turn credit), the per-frame log-probs under
per-token credit (the sampled text token), per-decision credit (ASPIRin, arXiv 2604.10065: only
the speak/silence decision, p(speak) = 1 - p(PAD) at each frame) or mixed credit (the token's
log-prob split as log p(token) = log p(speak) + log p(token | speak): the decision factor carries the
timing rewards, the word factor the content rewards), and the PPO-style clipped
policy-gradient loss with the k3 estimator of KL(pi || pi_ref) (Schulman's
`exp(ref - logp) - (ref - logp) - 1`, unbiased and non-negative). Every rollout's loss is the mean
over its valid frames; the batch loss is the mean over rollouts. It knows nothing about models or
rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from duplexalign.streams.layout import TEXT_PAD_ID


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4, scale: bool = True,
                     scale_by: torch.Tensor | None = None) -> torch.Tensor:
    """Group-relative advantages `[P, G]` of `rewards [P, G]` (P user streams, G rollouts each):
    `(r - mean_g r) / (std_g s + eps)` (population std) with `s = scale_by [P, G]`, by default
    `rewards` itself, or only centred when `scale` is False. A group whose rollouts all scored the
    same gets 0. Mixed credit scales each part of the reward by the std of the whole, so the
    parts' advantages add up to the whole's."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    s = rewards if scale_by is None else scale_by
    return centred / (s.std(dim=1, unbiased=False, keepdim=True) + eps)


def turn_advantages(rewards: torch.Tensor, eps: float = 1e-4, scale: bool = True,
                    scale_by: torch.Tensor | None = None) -> torch.Tensor:
    """`group_advantages` of each user turn apart: `rewards [P, G, J]` (J turns, the same for the
    G rollouts of one user stream; padded turns hold equal values and get 0) -> `[P, G, J]`,
    each `(p, j)` normalised over its G rollouts (`scale_by [P, G, J]`, default `rewards`)."""
    p, g, j = rewards.shape
    flat = rewards.permute(0, 2, 1).reshape(p * j, g)
    by = None if scale_by is None else scale_by.permute(0, 2, 1).reshape(p * j, g)
    return group_advantages(flat, eps, scale, by).reshape(p, j, g).permute(0, 2, 1)


def frame_advantages(advantages: torch.Tensor, turn_of_frame: torch.Tensor) -> torch.Tensor:
    """Per-frame advantages `[N, T]`: frame t of rollout n gets `advantages[n, turn_of_frame[n, t]]`
    (`advantages [N, J]` per user turn, `turn_of_frame [N, T]` long in [0, J))."""
    return advantages.gather(1, turn_of_frame)


def decision_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probs `[B, T]` of the speak/silence decision of each frame.

    Args:
        logits: text logits `[B, T, V]`.
        tokens: the sampled text stream `[B, T]`: PAD is "silence", any other id "speak" (EPAD
            announces a word).

    Returns:
        `log p(PAD)` where the frame is PAD, else `log(1 - p(PAD))`.
    """
    return _decision(torch.log_softmax(logits.float(), dim=-1), tokens)


def _decision(lp: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """`decision_logprobs` from the log-softmax `lp [B, T, V]` already taken."""
    lp_pad = lp[..., TEXT_PAD_ID]
    lp_speak = torch.log(-torch.expm1(lp_pad).clamp(max=-1e-12))  # log(1 - p), stable
    return torch.where(tokens == TEXT_PAD_ID, lp_pad, lp_speak)


def split_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The two factors of each frame's text log-prob, stacked `[B, 2, T]`.

    Args:
        logits: text logits `[B, T, V]`.
        tokens: the sampled text stream `[B, T]`.

    Returns:
        Row 0: `decision_logprobs` (log p(PAD) on silent frames, log(1 - p(PAD)) on the others).
        Row 1: the word factor `log p(token | speak) = log p(token) - log(1 - p(PAD))` on speaking
        frames, 0 on PAD frames, so row 0 + row 1 = log p(token) on every frame.
    """
    lp = torch.log_softmax(logits.float(), dim=-1)
    tok = lp.gather(-1, tokens.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    decision = _decision(lp, tokens)
    word = torch.where(tokens == TEXT_PAD_ID, torch.zeros_like(tok), tok - decision)
    return torch.stack([decision, word], dim=1)


@dataclass
class PolicyLoss:
    """The loss and what is logged with it.

    Attributes:
        loss: per-rollout loss `[B]` (mean over its frames of clipped PG + beta * k3).
        kl: per-rollout mean k3 KL estimate `[B]`.
        clip_frac: per-rollout share of frames where the ratio left [1 - eps, 1 + eps] `[B]`.
    """

    loss: torch.Tensor
    kl: torch.Tensor
    clip_frac: torch.Tensor


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor,
                advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float = 0.2,
                kl_beta: float = 0.04) -> PolicyLoss:
    """Clipped policy-gradient loss with a k3 KL penalty to the reference.

    Per frame: `-min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) + beta * k3`, with
    `rho = exp(logp - old_logp)` and `k3 = exp(ref - logp) - (ref - logp) - 1`; averaged over the
    rollout's valid frames.

    Args:
        logp: policy log-probs `[B, T]` (with gradient).
        old_logp: log-probs of the policy that sampled the rollouts `[B, T]` (no gradient).
        ref_logp: reference log-probs `[B, T]` (no gradient).
        advantages: one advantage per rollout `[B]`, or per frame `[B, T]` (per-turn credit).
        mask: valid frames `[B, T]` (bool).
        clip_eps: clipping range.
        kl_beta: weight of the KL penalty.
    """
    m = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = (advantages[:, None] if advantages.dim() == 1 else advantages).to(logp.dtype)
    pg = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    d = ref_logp - logp
    k3 = torch.exp(d) - d - 1
    n = m.sum(dim=1).clamp(min=1)
    loss = ((pg + kl_beta * k3) * m).sum(dim=1) / n
    clipped = ((ratio - 1).abs() > clip_eps).to(logp.dtype)
    return PolicyLoss(loss=loss, kl=(k3.detach() * m).sum(dim=1) / n,
                      clip_frac=(clipped.detach() * m).sum(dim=1) / n)
