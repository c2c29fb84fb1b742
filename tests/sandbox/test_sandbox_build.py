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


def test_phonetic_student_voices_add_varied_copies_but_never_a_held_out_voice():
    from duplexalign.sandbox.build import codec_fit_config, phonetic_voices
    from duplexalign.sandbox.users import HELDOUT_VOICES, MODEL_VOICE, TRAIN_VOICES, VoiceJitter

    plain = BuildConfig()
    assert phonetic_voices(plain) == TRAIN_VOICES + (MODEL_VOICE,)
    varied = BuildConfig(semantic_extra_voices=2,
                         voice_jitter=VoiceJitter(rate=0.15, pitch=15, variants=["f1", "m2"]))
    voices = phonetic_voices(varied)
    assert voices[:len(TRAIN_VOICES) + 1] == TRAIN_VOICES + (MODEL_VOICE,)
    extra = voices[len(TRAIN_VOICES) + 1:]
    assert len(extra) == 2 * len(TRAIN_VOICES) and len(set(extra)) == len(extra)
    assert not set(extra) & set(HELDOUT_VOICES + TRAIN_VOICES)
    # the codec a plain build fitted still matches; a varied student is a different fit
    assert "semantic_extra_voices" not in codec_fit_config(plain)
    assert codec_fit_config(varied)["semantic_extra_voices"] == 2


def test_extra_voices_speak_the_corpus_but_leave_the_codec_fit_alone(tmp_path):
    from duplexalign.sandbox.users import VoiceJitter

    plain = BuildConfig(conversations=8, codec_fit_conversations=4, sft_steps=2, sft_batch=4,
                        duration=6.0, codec="melrvq")
    varied = plain.model_copy(update={"extra_user_voices": 1, "voice_jitter": VoiceJitter(
        rate=0.15, pitch=15, variants=["f1", "m2"])})
    build(plain, tmp_path / "plain", progress=False)
    build(varied, tmp_path / "varied", progress=False)
    # the codec is fitted on the named training voices' conversations in both builds ...
    assert ((tmp_path / "plain" / CODEC_NAME).read_bytes()
            == (tmp_path / "varied" / CODEC_NAME).read_bytes())
    # ... while the corpus the model trains on is spoken by other voices too
    a, b = (load_model(tmp_path / d / INSTRUCT_NAME).state_dict() for d in ("plain", "varied"))
    assert any(not torch.equal(a[k], b[k]) for k in a)
