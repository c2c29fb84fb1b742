"""Supervised fine-tuning of a moshi model on plain conversation tensors (the sandbox instruct model).

Owns the moshi-finetune objective: text cross-entropy with PAD/EPAD weighted `pad_weight` (0.5) plus
audio cross-entropy over the model's codebooks (semantic codebook weighted `first_codebook_weight`),
each a weighted mean, and a small loop over any iterable of `codes [R, T]` int64 tensors (a list, or a
generator that yields forever), batched by stacking equal-length tensors. AdamW, warmup + cosine,
clipping, like the preference loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from tqdm import tqdm

from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID
from duplexalign.train.schedule import warmup_cosine


class SFTConfig(BaseModel):
    """Options of `train_sft`."""

    model_config = ConfigDict(extra="forbid")

    steps: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 10
    grad_clip: float = 1.0
    pad_weight: float = 0.5
    first_codebook_weight: float = 1.0
    audio_weight: float = 1.0


def sft_loss(model: nn.Module, codes: torch.Tensor, cfg: SFTConfig) -> tuple[torch.Tensor, dict]:
    """Text + audio cross-entropy of `codes [B, R, T]` (targets -1 are ignored).

    Returns:
        The loss (scalar) and `{"text": ..., "audio": ...}` floats.
    """
    out = model(codes)
    text = codes[:, 0]
    tl = torch.log_softmax(out.text_logits[:, 0].float(), -1)
    tl = tl.gather(-1, text.clamp(min=0)[..., None])[..., 0]
    tmask = out.text_mask[:, 0]
    tw = torch.where((text == TEXT_PAD_ID) | (text == TEXT_EPAD_ID), cfg.pad_weight, 1.0)
    tw = torch.where(tmask, tw, torch.zeros_like(tw))
    text_loss = -(torch.where(tmask, tl, torch.zeros_like(tl)) * tw).sum() / tw.sum().clamp(min=1)
    k = out.logits.shape[1]
    al = torch.log_softmax(out.logits.float(), -1)
    al = al.gather(-1, codes[:, 1:1 + k].clamp(min=0)[..., None])[..., 0]
    aw = out.mask.float()
    aw[:, 0] *= cfg.first_codebook_weight
    audio_loss = -(torch.where(out.mask, al, torch.zeros_like(al)) * aw).sum() / aw.sum().clamp(
        min=1)
    loss = text_loss + cfg.audio_weight * audio_loss
    return loss, {"text": text_loss.item(), "audio": audio_loss.item()}


def _batches(data: Iterable[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    buf: list[torch.Tensor] = []
    while True:
        seen = False
        for codes in data:
            seen = True
            buf.append(codes)
            if len(buf) == size:
                yield torch.stack(buf)
                buf = []
        if not seen:
            raise ValueError("SFT data is empty")


def train_sft(model: nn.Module, data: Iterable[torch.Tensor], cfg: SFTConfig) -> list[dict]:
    """Train `model` in place on conversations `data` (each `[R, T]`, equal T); return the log.

    A list is cycled over; a generator may yield forever. All parameters are trained.
    """
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.weight_decay)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, cfg.steps))
    model.train()
    history = []
    batches = _batches(data, cfg.batch_size)
    for step in tqdm(range(cfg.steps), desc="sft", unit="step", leave=False):
        loss, parts = sft_loss(model, next(batches), cfg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history.append({"step": step + 1, "loss": loss.item(), **parts})
    return history
