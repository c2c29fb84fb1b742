"""SFT on plain conversation tensors: the loss falls and PAD frames weigh half."""

from __future__ import annotations

import torch

from duplexalign.models.presets import build_model
from duplexalign.train.sft import SFTConfig, sft_loss, train_sft


def _convs(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        c = torch.randint(0, 8, (9, 24), generator=g)
        c[0] = torch.tensor([3, 3, 0, 10, 11, 3] * 4)  # a fixed, learnable text pattern
        out.append(c)
    return out


def test_sft_loss_decreases():
    model = build_model("tiny")
    hist = train_sft(model, _convs(8), SFTConfig(steps=30, batch_size=4, lr=1e-2, warmup_steps=2))
    assert hist[-1]["text"] < 0.5 * hist[0]["text"]
    assert hist[-1]["audio"] < hist[0]["audio"]


def test_pad_weight_is_applied():
    model = build_model("tiny")
    codes = torch.stack(_convs(1))
    half, _ = sft_loss(model, codes, SFTConfig(pad_weight=0.5, audio_weight=0.0))
    # recompute by hand: weights 0.5 on PAD/EPAD frames, 1 on word frames
    lp = torch.log_softmax(model(codes).text_logits[0, 0], -1)
    nll = -lp.gather(-1, codes[0, 0][:, None])[:, 0]
    w = torch.where(codes[0, 0] <= 3, 0.5, 1.0)
    assert torch.allclose(half, (nll * w).sum() / w.sum(), atol=1e-5)
