"""The phonetic student of the semantic codec: espeak phone timings, hand-made label layouts,
nearest-centroid units, causality and storage of a phonetic codec, and a real fit on espeak speech."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.records import Word
from duplexalign.speech.base import Speech
from duplexalign.speech.phonetic_fit import (
    PAUSE,
    fit_phonetic,
    phone_clips,
    phone_name,
    subframe_targets,
)
from duplexalign.speech.semantic import CausalUnitNet, SemanticCodec, StudentConfig
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME


def test_espeak_gives_phone_timings_that_tile_the_utterance():
    from duplexalign.speech.voices import get_voice

    sp = get_voice("user_0").synthesize("um, tell me a joke")
    names = [phone_name(p) for p, _, _ in sp.phones]
    assert names[:2] == ["V", "m"] and PAUSE in names
    starts = [a for _, a, _ in sp.phones]
    assert starts == sorted(starts)
    for (_, _, b), (_, a, _) in zip(sp.phones, sp.phones[1:], strict=False):
        assert b == pytest.approx(a)  # each phone lasts until the next starts
    assert sp.phones[-1][2] == pytest.approx(sp.duration, abs=1e-3)


def test_phone_name_drops_stress_and_merges_pauses():
    assert [phone_name(p) for p in ("'E", ",i:", "_:", "_", "", "oU")] == \
        ["E", "i:", PAUSE, PAUSE, PAUSE, "oU"]


def test_subframe_targets_pick_the_centre_of_each_part_of_a_frame():
    ids = np.arange(16)  # two frames of 8 mel frames
    np.testing.assert_array_equal(subframe_targets(ids, stack=8, subframes=4),
                                  np.array([[1, 3, 5, 7], [9, 11, 13, 15]]))
    np.testing.assert_array_equal(subframe_targets(ids, stack=8, subframes=2),
                                  np.array([[2, 6], [10, 14]]))


def _fake_synth(text: str, voice: str) -> Speech:
    # 0.1 s of "a" then 0.1 s of pause, whatever the text
    wav = np.full(int(0.2 * SAMPLE_RATE), 0.1, np.float32)
    return Speech(wav, SAMPLE_RATE, [Word(text=text, start=0.0, end=0.1)], [("'a", 0.0, 0.1), ("_", 0.1, 0.2)])


def test_phone_clips_place_labels_where_the_speech_is():
    clips = phone_clips(["x"], ["v"], _fake_synth, count=1, seconds=0.8, seed=0, gap=(0.3, 0.3))
    (clip,) = clips
    assert len(clip.wav) == 10 * SAMPLES_PER_FRAME  # 0.8 s is exactly 10 frames
    assert len(clip.labels) == 80
    # the utterance starts after a 0.3 s gap: 10 ms frames 30..39 are "a", then its own 0.1 s
    # pause; the next gap (0.3 s) reaches the end of the clip, so there is no second utterance
    assert clip.labels[:30] == [PAUSE] * 30 and clip.labels[30:40] == ["a"] * 10
    assert clip.labels[40:] == [PAUSE] * 40
    expected = np.zeros(len(clip.wav), np.float32)
    expected[int(0.3 * SAMPLE_RATE): int(0.5 * SAMPLE_RATE)] = 0.1
    np.testing.assert_array_equal(clip.wav, expected)


def test_phone_clips_refuse_voices_without_phone_timings():
    def no_phones(text, voice):
        return Speech(np.zeros(100, np.float32), SAMPLE_RATE, [])

    with pytest.raises(ConfigError, match="phone timings"):
        phone_clips(["x"], ["v"], no_phones, count=1, seconds=4.0, seed=0)


def test_phonetic_units_are_the_nearest_centroid_of_the_posteriors_and_causal():
    torch.manual_seed(0)
    cfg = StudentConfig(units=5, input_dim=12, hidden=16, phones=3, subframes=2)
    net = CausalUnitNet(cfg).eval()
    assert net(torch.randn(1, 4, 12)).shape == (1, 4, 6)
    net.centroids.copy_(torch.rand(5, 6))
    x = torch.randn(2, 30, 12)
    with torch.no_grad():
        post = net.posteriors(x)
        units = net.units_of(x)
    # hand arithmetic: per-subframe softmax, then the closest centroid in squared distance
    manual = torch.softmax(net(x).reshape(2, 30, 2, 3), -1).reshape(2, 30, 6)
    torch.testing.assert_close(post, manual)
    torch.testing.assert_close(post.reshape(2, 30, 2, 3).sum(-1), torch.ones(2, 30, 2))
    d = ((post[:, :, None, :] - net.centroids[None, None]) ** 2).sum(-1)
    assert torch.equal(units, d.argmin(-1))
    y = x.clone()
    y[:, 20:] = torch.randn(2, 10, 12) * 5
    with torch.no_grad():
        assert torch.equal(net.units_of(y)[:, :20], units[:, :20])


def test_phonetic_fit_learns_phones_and_round_trips(tmp_path):
    from duplexalign.speech.voices import get_voice

    texts = ["tell me a joke", "what is the capital of france", "um", "sorry i cannot help"]

    def synth(text, voice):
        return get_voice(voice).synthesize(text)

    clips = phone_clips(texts, ["user_0", "user_1"], synth, count=8, seconds=4.0, seed=0)
    codec, inventory = fit_phonetic(clips, [c.wav for c in clips[:4]], units=16,
                                    acoustic_codebooks=2, acoustic_card=16, pca_dim=16, steps=150,
                                    seed=0, heldout=0.25, progress=False,
                                    student=StudentConfig(hidden=32))
    assert inventory[0] == PAUSE and len(inventory) == codec.student.cfg.phones
    s = codec.stats
    assert s["teacher"] == "phones" and s["units"] == 16
    # chance is 1 / len(inventory) (< 0.05); always answering "pause" would score about 0.4
    assert s["teacher_agreement_train"] > 0.6, s
    codes = codec.encode(clips[0].wav)
    assert codes.shape == (3, 50) and codes[0].max() < 16 and len(np.unique(codes[0])) > 4
    loaded = SemanticCodec.load(codec.save(tmp_path / "phon.safetensors"))
    np.testing.assert_array_equal(loaded.encode(clips[1].wav), codec.encode(clips[1].wav))
