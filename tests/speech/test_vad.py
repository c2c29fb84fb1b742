"""VAD: silero finds TTS speech in white noise at 10 dB SNR (F1 on a 10 ms grid against the
synthesiser's word spans, pauses shorter than 0.3 s bridged)."""

import numpy as np

from duplexalign.speech.audio import add_noise
from duplexalign.speech.base import VAD_BACKENDS
from duplexalign.speech.vad import frame_labels
from speech.helpers import monologue
from speech.sentences import SENTENCES


def _bridge(words, max_gap=0.3):
    spans = []
    for w in words:
        if spans and w.start - spans[-1][1] <= max_gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], w.end))
        else:
            spans.append((w.start, w.end))
    return spans


def test_frame_labels_marks_the_grid():
    np.testing.assert_array_equal(frame_labels([(0.02, 0.05)], 0.08),
                                  [0, 0, 1, 1, 1, 0, 0, 0])


def test_silero_f1_at_10db_snr():
    vad = VAD_BACKENDS.get("silero")()
    wav, words = monologue("user_1", SENTENCES[:10], seed=7, gap=(0.8, 2.0))
    noisy = add_noise(wav, snr_db=10.0, seed=2)
    duration = len(wav) / 24000
    truth = frame_labels(_bridge(words), duration)
    pred = frame_labels(vad.segments(noisy, 24000), duration)
    tp = np.sum(truth & pred)
    f1 = 2 * tp / (truth.sum() + pred.sum())
    assert f1 >= 0.9, f"F1 {f1:.3f}"
    # pure noise is not speech
    assert vad.segments(add_noise(np.zeros(48000, np.float32), 10.0, reference=wav), 24000) == []
