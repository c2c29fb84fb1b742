"""Audio I/O: file round trips, resampling, channel handling and timeline mixing."""

import numpy as np
import pytest
import soundfile as sf

from duplexalign.errors import BadInput
from duplexalign.speech.audio import (
    add_noise,
    list_audio_files,
    merge_channels,
    place,
    read_audio,
    resample,
    split_channels,
    write_audio,
)


def _sine(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_write_read_round_trip_keeps_the_signal(tmp_path, suffix):
    wav = _sine(440, 1.0, 24000)
    path = write_audio(tmp_path / f"a{suffix}", wav)
    back = read_audio(path)
    assert back.dtype == np.float32 and back.shape == wav.shape
    tol = 1e-3 if suffix != ".ogg" else 0.1  # vorbis is lossy
    assert np.abs(back - wav).mean() < tol


def test_a_wav_is_16_bit_pcm_byte_for_byte_what_libsndfile_writes_to_a_file(tmp_path):
    wav = np.stack([_sine(440, 0.5, 24000), _sine(220, 0.5, 24000)])  # [C=2, S]
    sf.write(str(tmp_path / "ref.wav"), wav.T, 24000, subtype="PCM_16")
    path = write_audio(tmp_path / "a.wav", wav)  # encoded in memory, written in one go
    assert path.read_bytes() == (tmp_path / "ref.wav").read_bytes()
    assert sf.info(str(path)).subtype == "PCM_16"
    with pytest.raises(ValueError, match="unknown audio format"):
        write_audio(tmp_path / "a.xyz", wav)


def test_read_resamples_to_24k_and_selects_channels(tmp_path):
    left, right = _sine(300, 2.0, 44100), _sine(1000, 2.0, 44100)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 44100)
    both = read_audio(tmp_path / "s.wav")
    assert both.shape == (2, 48000)
    right24 = read_audio(tmp_path / "s.wav", channel=1)
    assert right24.shape == (48000,)
    # the right channel's energy sits at 1 kHz: compare its spectrum peak
    peak_hz = np.argmax(np.abs(np.fft.rfft(right24))) * 24000 / len(right24)
    assert abs(peak_hz - 1000) < 2
    with pytest.raises(BadInput) as e:
        read_audio(tmp_path / "s.wav", channel=2)
    assert e.value.reason == "audio_channel_missing"


def test_unreadable_file_is_bad_input(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not audio at all")
    with pytest.raises(BadInput) as e:
        read_audio(tmp_path / "x.wav")
    assert e.value.reason == "audio_unreadable"


def test_resample_preserves_a_sine():
    x = _sine(440, 1.0, 16000)
    y = resample(x, 16000, 24000)
    assert len(y) == 24000
    np.testing.assert_allclose(y[1000:-1000], _sine(440, 1.0, 24000)[1000:-1000], atol=1e-3)
    assert len(resample(x, 16000, 16000)) == 16000


def test_split_and_merge_pad_the_shorter_channel():
    merged = merge_channels([np.ones(3, np.float32), 2 * np.ones(5, np.float32)])
    np.testing.assert_array_equal(merged, [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2]])
    a, b = split_channels(merged)
    np.testing.assert_array_equal(b, [2, 2, 2, 2, 2])
    assert len(split_channels(np.zeros(4))) == 1


def test_place_mixes_clips_at_their_start_and_cuts_the_tail():
    # 10 Hz timeline of 1 s; clip A at 0.2 s, clip B at 0.3 s overlaps A, clip C runs past the end
    out = place([(0.2, np.array([1, 1, 1], np.float32)),
                 (0.3, np.array([10, 10], np.float32)),
                 (0.9, np.array([5, 5, 5], np.float32))], duration=1.0, sample_rate=10)
    np.testing.assert_array_equal(out, [0, 0, 1, 11, 11, 0, 0, 0, 0, 5])
    with pytest.raises(ValueError):
        place([(-0.1, np.ones(2))], 1.0, 10)


def test_add_noise_hits_the_requested_snr():
    x = _sine(200, 2.0, 24000)
    noisy = add_noise(x, snr_db=10.0, seed=1)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert abs(snr - 10.0) < 0.3


def test_list_audio_files_is_recursive_and_sorted(tmp_path):
    write_audio(tmp_path / "b" / "2.flac", np.zeros(100))
    write_audio(tmp_path / "1.wav", np.zeros(100))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_audio_files(tmp_path)] == ["1.wav", "2.flac"]
    with pytest.raises(BadInput):
        list_audio_files(tmp_path / "missing")
