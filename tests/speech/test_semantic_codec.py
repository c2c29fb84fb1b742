"""The semantic codec: causal units (no unit ever sees later audio), the codec protocol, storage,
format detection, and a real fit with the Whisper teacher on TTS speech."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.speech.codec import codec_kind, load_codec_file
from duplexalign.speech.semantic import CausalUnitNet, SemanticCodec, StudentConfig
from duplexalign.timebase import SAMPLES_PER_FRAME


@pytest.fixture(scope="module")
def random_codec(train_monologues):
    """A semantic codec with a seeded random student (units 32) over a small fitted MelRVQ."""
    from duplexalign.speech.melrvq import MelRVQ

    acoustic = MelRVQ.fit([w for w, _ in train_monologues[:2]], num_codebooks=2,
                          codebook_size=16, pca_dim=16, seed=0, progress=False)
    torch.manual_seed(0)
    return SemanticCodec(CausalUnitNet(StudentConfig(units=32, hidden=32)), acoustic)


def test_student_logits_never_depend_on_later_frames():
    torch.manual_seed(0)
    net = CausalUnitNet(StudentConfig(units=8, input_dim=12, hidden=16)).eval()
    x = torch.randn(1, 40, 12)
    y = x.clone()
    y[:, 25:] = torch.randn(1, 15, 12) * 5  # change frames 25.. only
    with torch.no_grad():
        a, b = net(x), net(y)
    assert torch.equal(a[:, :25], b[:, :25])
    assert not torch.allclose(a[:, 25:], b[:, 25:])
    assert net.receptive_field == 1 + 2 * (1 + 2 + 4 + 8 + 1)


def test_appending_future_audio_never_changes_past_units(random_codec, train_monologues):
    wav = train_monologues[0][0]
    head = wav[: 40 * SAMPLES_PER_FRAME + 700]  # 40 whole frames and part of the 41st
    tail = train_monologues[1][0][: 30 * SAMPLES_PER_FRAME]
    a = random_codec.encode(head)
    b = random_codec.encode(np.concatenate([head, tail]))
    assert a.shape == (3, 41) and b.shape[1] > 41
    # the stated lookahead is less than one frame (the STFT half-window): every frame but the last
    # of the shorter clip is identical, semantic units and acoustic codes alike
    np.testing.assert_array_equal(a[:, :40], b[:, :40])
    assert len(np.unique(b[0])) > 1  # the units are not a constant


def test_codec_protocol_shapes_and_decoding_uses_the_acoustic_rows(random_codec, train_monologues):
    wav = train_monologues[0][0][: 25 * SAMPLES_PER_FRAME]
    codes = random_codec.encode(wav)
    assert codes.dtype == np.int64 and codes.shape == (random_codec.num_codebooks, 25)
    assert codes[0].max() < random_codec.units and codes[1:].max() < 16
    assert random_codec.cardinality == 32
    out = random_codec.decode(codes)
    assert out.shape == (25 * SAMPLES_PER_FRAME,)
    np.testing.assert_array_equal(out, random_codec.acoustic.decode(codes[1:]))
    with pytest.raises(ValueError):
        random_codec.decode(codes[None])


def test_save_load_round_trip_and_format_detection(random_codec, train_monologues, tmp_path):
    wav = train_monologues[2][0][: 30 * SAMPLES_PER_FRAME]
    path = random_codec.save(tmp_path / "codec.safetensors")
    assert codec_kind(path) == "semantic"
    loaded = load_codec_file(path)
    assert isinstance(loaded, SemanticCodec)
    np.testing.assert_array_equal(loaded.encode(wav), random_codec.encode(wav))
    mel = random_codec.acoustic.save(tmp_path / "mel.safetensors")
    assert codec_kind(mel) == "melrvq"
    with pytest.raises(ConfigError, match="not a semantic codec"):
        SemanticCodec.load(mel)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ConfigError, match="codec.path"):
        load_codec_file(tmp_path / "junk.safetensors")
    with pytest.raises(ConfigError, match="not found"):
        load_codec_file(tmp_path / "missing.safetensors")


def test_fit_with_the_whisper_teacher(train_monologues):
    from duplexalign.speech.semantic_fit import fit_semantic

    wavs = [w for w, _ in train_monologues[:3]]
    codec, centroids = fit_semantic(wavs, units=16, acoustic_codebooks=2, acoustic_card=16,
                                    pca_dim=16, steps=120, progress=False,
                                    student=StudentConfig(hidden=32))
    assert centroids.shape == (16, 384)
    s = codec.stats
    assert s["units"] == 16 and s["used_units"] == 16 and s["steps"] == 120
    assert 0.0 <= s["teacher_agreement_heldout"] <= 1.0
    codes = codec.encode(wavs[0])
    assert codes.shape[0] == 3 and codes[0].max() < 16
    # distillation learned something: the student agrees with the teacher far above chance
    assert s["teacher_agreement_train"] > 0.3, s


def test_batch_encoding_equals_one_clip_at_a_time(random_codec, train_monologues):
    wavs = [train_monologues[i][0][: n * SAMPLES_PER_FRAME + 5] for i, n in ((0, 30), (1, 12),
                                                                           (2, 21))]
    batch = random_codec.encode_batch(wavs)
    for wav, codes in zip(wavs, batch, strict=True):
        np.testing.assert_array_equal(codes, random_codec.encode(wav))
