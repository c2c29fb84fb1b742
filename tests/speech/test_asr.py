"""ASR: TTS -> whisper round trips on twenty sentences (WER and word-start error against the
synthesiser's own word times), pocketsphinx forced alignment of known text, and config errors."""

import numpy as np
import pytest

from duplexalign.errors import ConfigError
from duplexalign.speech.asr import wer
from duplexalign.speech.base import ASR_BACKENDS
from duplexalign.speech.voices import get_voice
from duplexalign.text import normalize as normalize_text
from speech.helpers import matched_start_errors, monologue
from speech.sentences import SENTENCES


def test_normalize_and_wer_arithmetic():
    assert normalize_text("Hello, World!  It's   OK.") == "hello world it's ok"
    # one substitution and one deletion over four reference words
    assert wer("the cat sat down", "the dog sat") == pytest.approx(2 / 4)
    assert wer("", "") == 0.0 and wer("a b", "") == 1.0


@pytest.mark.parametrize("voice,n", [("model", 20), ("user_0", 20), ("model_alt", 10)])
def test_whisper_round_trip_wer_and_word_starts(whisper, voice, n):
    wav, truth = monologue(voice, SENTENCES[:n], seed=3)
    words = whisper.transcribe(wav, 24000)
    error = wer(" ".join(SENTENCES[:n]), " ".join(w.text for w in words))
    assert error <= 0.10, f"{voice}: WER {error:.3f}"
    starts = matched_start_errors(truth, words)
    assert len(starts) >= 0.8 * len(truth)
    assert np.median(starts) <= 0.15, f"{voice}: median start error {np.median(starts):.3f}s"
    assert all(b.start >= a.start for a, b in zip(words, words[1:], strict=False))


def test_whisper_resamples_any_rate_and_handles_silence(whisper):
    sp = get_voice("model").synthesize("Please open the window.")
    from duplexalign.speech.audio import resample

    words = whisper.transcribe(resample(sp.wav, 24000, 44100), 44100)
    assert normalize_text(" ".join(w.text for w in words)) == "please open the window"
    assert whisper.transcribe(np.zeros(1000, np.float32), 24000) == []  # too short to decode
    quiet_noise = np.random.default_rng(0).normal(0, 0.003, 48000).astype(np.float32)
    assert whisper.transcribe(quiet_noise, 24000) == []  # no hallucinated words in silence


def test_whisper_rejects_a_folder_without_a_model(tmp_path):
    with pytest.raises(ConfigError, match="asr_model"):
        ASR_BACKENDS.get("whisper")(model=str(tmp_path))


def test_pocketsphinx_aligns_known_text_close_to_tts_truth():
    aligner = ASR_BACKENDS.get("pocketsphinx")()
    text = "Please remind me to call my mother at 7 this evening."
    sp = get_voice("user_0").synthesize(text)
    words = aligner.align(sp.wav, 24000, text)
    # one word per spoken token, verbatim; "7" is not in the dictionary and is placed between
    assert [w.text for w in words] == text.split()
    assert words[7].start >= words[6].end - 1e-6 and words[7].end <= words[8].start + 1e-6
    errs = [abs(a.start - b.start) for a, b in zip(words, sp.words, strict=False) if a.text != "7"]
    assert np.median(errs) <= 0.08
    # recognition mode still works after aligning (the search is switched back)
    assert isinstance(aligner.transcribe(sp.wav, 24000), list)
