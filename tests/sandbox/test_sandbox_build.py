"""`duplexalign sandbox build` on a tiny corpus: every asset is written, the model trains through the
trainer's SFT mode, and a rebuild with the same config is a no-op."""

import json

import pytest
import torch

from duplexalign.models.presets import load_model
from duplexalign.sandbox.build import CODEC_NAME, INSTRUCT_NAME, TOKENIZER_NAME, BuildConfig, build
from duplexalign.speech.codec import codec_kind


@pytest.mark.parametrize(("codec", "teacher"), [("semantic", "phones"), ("semantic", "whisper"),
                                               ("melrvq", "phones")])
def test_tiny_build_writes_assets_and_is_idempotent(tmp_path, codec, teacher):
    cfg = BuildConfig(conversations=8, codec_fit_conversations=4, sft_steps=4, sft_batch=4,
                      duration=6.0, codec=codec, semantic_units=16, semantic_fit_conversations=6,
                      semantic_teacher=teacher, semantic_fit_clips=6, semantic_steps=4)
    record = build(cfg, tmp_path, progress=False)
    assert codec_kind(tmp_path / CODEC_NAME) == codec
    for name in (CODEC_NAME, TOKENIZER_NAME, INSTRUCT_NAME):
        assert (tmp_path / name).exists(), name
    k = cfg.codebooks
    assert record["codes_shape"] == [8, 1 + 2 * k, 75]  # 6 s at 12.5 Hz
    assert record["final_loss"]["step"] == 4
    model = load_model(tmp_path / INSTRUCT_NAME)
    assert model.dep_q == k and model.card == cfg.card  # 64 acoustic entries >= 16 units
    assert all(torch.isfinite(p).all() for p in model.parameters())
    mtime = (tmp_path / INSTRUCT_NAME / "model.safetensors").stat().st_mtime_ns
    assert build(cfg, tmp_path, progress=False) == json.loads((tmp_path / "build.json").read_text())
    assert (tmp_path / INSTRUCT_NAME / "model.safetensors").stat().st_mtime_ns == mtime
