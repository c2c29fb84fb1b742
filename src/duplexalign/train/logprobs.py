"""Window log-probs of chosen and rejected text streams: the quantity every preference loss uses.

Owns the per-frame weights inside the pair window (1 everywhere, `onset_weight` on the first
`onset_frames` frames of the reply, or only the decision frames where the variants part), the length |y| (window frames incl. PAD, or non-pad tokens), and
the forward that produces them: the text-only path (temporal transformer + text head, no depth
transformer), with the shared context computed once per pair by default, or the full forward when
audio-codebook log-probs are added (the paper's text+audio ablation). It also returns the
"user holds the floor" log-prob (`floor_logp`): the chosen text's mean log-prob of PAD over the
frames where the user holds the floor and the model is silent (floor labels from the shards), over
the whole sequence, context and window; the trainer's floor anchor is its negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from duplexalign.models.forward import shared_prefix_text_logits, text_logits, token_logprobs
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID


class ScoreConfig(BaseModel):
    """What is summed into a window log-prob (part of the reference-cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length_norm: Literal["frames", "tokens"] = "frames"
    """|y| = window frames incl. PAD (weighted), or the number of non-PAD/EPAD text tokens."""
    onset_frames: int = 0
    """Emphasise the first N frames of the window (the reply onset) ..."""
    onset_weight: float = 1.0
    """... with this per-frame weight (others weigh 1)."""
    decision_frames: int = 0
    """> 0 scores only the decision: the first window frame where the two text streams differ and
    the N - 1 frames after it (per-decision credit). Frames before it cancel exactly in every
    preference margin (same tokens, same context); frames after it are conditioned on the variant's
    own choice, so a silence pair's long run of rejected PADs no longer teaches "speak whenever it is
    quiet". 0 = the whole window. A pair whose texts never differ keeps its whole window."""
    audio_weight: float = 0.0
    """> 0 adds the model's audio-codebook log-probs (full forward incl. depth transformer)."""
    share_context: bool = True
    """Compute the context shared by chosen and rejected once (exact; needs no checkpointing)."""


@dataclass
class WindowScores:
    """Scores of a batch of pairs, chosen rows first.

    Attributes:
        logps: weighted window log-prob sums, `[2B]` (chosen b, then rejected b).
        lengths: |y|, `[2B]`.
        floor_logp: mean log p(PAD) of the chosen text over its floor frames (`floor_mask`),
            `[B]`; 0 for a pair without such frames.
    """

    logps: torch.Tensor
    lengths: torch.Tensor
    floor_logp: torch.Tensor


def floor_mask(floor: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """`[B, T]` bool: floor frames (`floor [B, T]` bool) whose text (`text [B, T]`) is PAD."""
    return floor & (text == TEXT_PAD_ID)


def floor_logp(text_lp: torch.Tensor, text: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Mean per-frame log-prob over `floor_mask(floor, text)`, `[B]` (0 where the mask is empty).

    Args:
        text_lp: `[B, T]` log-prob of each frame's text token (so log p(PAD) on the mask).
        text: `[B, T]` text ids.
        floor: `[B, T]` bool floor labels.
    """
    m = floor_mask(floor, text).to(text_lp.dtype)
    return (text_lp * m).sum(1) / m.sum(1).clamp(min=1.0)


def decision_window(chosen_text: torch.Tensor, rejected_text: torch.Tensor, window: torch.Tensor,
                    frames: int) -> torch.Tensor:
    """`[B, T]` bool: the first `frames` window frames from the first one where `chosen_text [B, T]`
    and `rejected_text [B, T]` differ (`window [B, T]` bool); the whole window where they never do."""
    differ = window & (chosen_text != rejected_text)
    t = torch.arange(window.shape[1], device=window.device)
    first = torch.where(differ, t, window.shape[1]).min(1, keepdim=True).values  # [B, 1]
    span = window & (t >= first) & (t < first + frames)
    return torch.where(differ.any(1, keepdim=True), span, window)


def frame_weights(window: torch.Tensor, cfg: ScoreConfig) -> torch.Tensor:
    """Per-frame weights `[N, T]` from a window mask `[N, T]` (bool): 0 outside, onset emphasis."""
    w = window.float()
    if cfg.onset_frames > 0 and cfg.onset_weight != 1.0:
        rank = torch.cumsum(window.long(), dim=1)  # 1 at the first window frame
        w = torch.where(window & (rank <= cfg.onset_frames), cfg.onset_weight, w)
    return w


def score_pairs(model: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor,
                window: torch.Tensor, split: int, cfg: ScoreConfig,
                floor: torch.Tensor | None = None) -> WindowScores:
    """Score chosen and rejected of B pairs in one forward.

    Args:
        model: moshi `LMModel` (policy, or reference under no_grad / `lora_scale(model, 0)`).
        chosen: `[B, R, T]` codes, right-padded with -1.
        rejected: `[B, R, T]`, identical to `chosen` on frames `< split` and on the user rows.
        window: `[B, T]` bool, the pair window frames (same for both variants).
        split: a frame index `<=` every pair's window start (the shared context ends there).
        cfg: what to sum.
        floor: `[B, T]` bool floor labels of the chosen variants (None: `floor_logp` is 0).
    """
    if cfg.decision_frames > 0:
        window = decision_window(chosen[:, 0], rejected[:, 0], window, cfg.decision_frames)
    codes = torch.cat([chosen, rejected])  # [2B, R, T]
    win2 = torch.cat([window, window]) & (codes[:, 0] >= 0)
    b = chosen.shape[0]
    if cfg.audio_weight > 0:
        out = model(codes)
        lp = token_logprobs(out.text_logits[:, 0], codes[:, 0])
        chosen_text_lp = lp[:b]
        k = out.logits.shape[1]
        alp = torch.log_softmax(out.logits.float(), -1)
        tgt = codes[:, 1:1 + k].clamp(min=0)
        alp = alp.gather(-1, tgt[..., None])[..., 0]
        alp = torch.where(out.mask, alp, torch.zeros_like(alp)).sum(1)  # [2B, T]
        lp = lp + cfg.audio_weight * alp
    elif cfg.share_context and split > 0:
        win_logits, ctx_logits = shared_prefix_text_logits(model, codes, split, 2,
                                                           return_context=True)
        lp = torch.cat([torch.zeros(2 * b, split, device=codes.device),
                        token_logprobs(win_logits, codes[:, 0, split:])], dim=1)
        ctx_lp = token_logprobs(ctx_logits, chosen[:, 0, :split])
        chosen_text_lp = torch.cat([ctx_lp, lp[:b, split:]], dim=1)
    else:
        lp = token_logprobs(text_logits(model, codes), codes[:, 0])
        chosen_text_lp = lp[:b]
    w = frame_weights(win2, cfg)
    logps = (lp * w).sum(1)
    if cfg.length_norm == "frames":
        lengths = w.sum(1)
    else:
        text = codes[:, 0]
        lexical = win2 & (text != TEXT_PAD_ID) & (text != TEXT_EPAD_ID)
        lengths = lexical.sum(1).float()
    if floor is None:
        anchor = torch.zeros(b, device=codes.device)
    else:
        anchor = floor_logp(chosen_text_lp, chosen[:, 0], floor.to(codes.device))
    return WindowScores(logps, lengths.clamp(min=1.0), anchor)
