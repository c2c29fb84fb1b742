"""Supervised fine-tuning of the sandbox's tiny moshi model on the flawed-policy corpus.

Owns the SFT recipe that makes the sandbox's "instruct" model (sandbox-probe.md section 2): the
moshi-finetune loss (text cross-entropy with PAD/EPAD weighted 0.5, plus cross-entropy over the
model's audio codebooks, each a weighted mean) and a short AdamW loop with warm-up and cosine decay
over in-memory `codes [N, R, T]`. It is the sandbox's adapter for the trainer's SFT mode: `build.py`
uses `duplexalign.train`'s SFT entry point when that exists and this loop otherwise. It knows nothing
about where the codes came from.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTSettings:
    """Optimiser and schedule of the SFT loop (probe values)."""

    steps: int = 700
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    text_pad_weight: float = 0.5
    seed: int = 0


def sft_loss(model: torch.nn.Module, codes: torch.Tensor, text_pad_weight: float = 0.5
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """moshi-finetune's SFT loss on a batch.

    Args:
        model: a moshi `LMModel` with `dep_q` = K.
        codes: `[B, 1 + 2K, T]` int64 undelayed codes (-1 = no input, no loss).
        text_pad_weight: weight of PAD/EPAD text targets.

    Returns:
        (text_loss + audio_loss, {"text": ..., "audio": ...}); each term is sum(w * CE) / sum(w)
        over its unmasked positions.
    """
    out = model(codes)
    k = out.logits.shape[1]
    text_t = codes[:, 0]  # [B, T]
    tmask = out.text_mask[:, 0]
    tl = out.text_logits[:, 0][tmask]  # [N, V]
    tt = text_t[tmask]
    w = torch.where((tt == TEXT_PAD_ID) | (tt == TEXT_EPAD_ID),
                    torch.full_like(tt, text_pad_weight, dtype=torch.float32),
                    torch.ones_like(tt, dtype=torch.float32))
    text = (F.cross_entropy(tl.float(), tt, reduction="none") * w).sum() / w.sum()
    amask = out.mask
    al = out.logits[amask]  # [M, card]
    at = codes[:, 1:1 + k][amask]
    audio = F.cross_entropy(al.float(), at)
    return text + audio, {"text": text.item(), "audio": audio.item()}


def train_sft(model: torch.nn.Module, codes: torch.Tensor, settings: SFTSettings,
              progress: bool = True) -> list[dict[str, float]]:
    """Train `model` in place on `codes` `[N, R, T]` with random batches.

    Returns:
        Per-step logs {"step", "loss", "text", "audio", "lr"}.
    """
    g = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95),
                            weight_decay=settings.weight_decay)

    def lr_at(step: int) -> float:
        if step < settings.warmup:
            return (step + 1) / settings.warmup
        p = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    logs = []
    bar = tqdm(range(settings.steps), desc="sft", disable=not progress)
    for step in bar:
        idx = torch.randint(0, codes.shape[0], (settings.batch_size,), generator=g)
        loss, parts = sft_loss(model, codes[idx], settings.text_pad_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        sched.step()
        logs.append({"step": step, "loss": float(loss), **parts, "lr": sched.get_last_lr()[0]})
        if step % 20 == 0:
            bar.set_postfix(text=f"{parts['text']:.3f}", audio=f"{parts['audio']:.3f}")
    model.eval()
    return logs
