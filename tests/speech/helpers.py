"""Builders shared by the speech tests: TTS dialogues with ground-truth word times, frame labels and
word matching between a reference and a transcript."""

from __future__ import annotations

import difflib

import numpy as np

from duplexalign.records import Word
from duplexalign.speech.audio import place
from duplexalign.speech.voices import get_voice
from duplexalign.text import normalize as normalize_text
from duplexalign.timebase import FRAME_SECONDS
from speech.sentences import SENTENCES


def monologue(voice: str, sentences: list[str] = SENTENCES, seed: int = 0,
              gap: tuple[float, float] = (0.3, 1.5)) -> tuple[np.ndarray, list[Word]]:
    """Sentences spoken by `voice` with random silences between them.

    Returns:
        (wav [S] at 24 kHz, true words with times in seconds on that timeline).
    """
    rng = np.random.default_rng(seed)
    tts = get_voice(voice)
    clips, words, t = [], [], float(rng.uniform(0.2, 0.8))
    for s in sentences:
        sp = tts.synthesize(s)
        clips.append((t, sp.wav))
        words += [w.model_copy(update={"start": w.start + t, "end": w.end + t}) for w in sp.words]
        t += sp.duration + float(rng.uniform(*gap))
    return place(clips, t), words


def speech_frames(words: list[Word], num_frames: int, min_cover: float = 0.02) -> np.ndarray:
    """[T] bool: 80 ms frames with at least `min_cover` seconds inside some word."""
    cover = np.zeros(num_frames)
    for w in words:
        for f in range(int(w.start / FRAME_SECONDS), min(num_frames, int(w.end / FRAME_SECONDS) + 1)):
            a, b = f * FRAME_SECONDS, (f + 1) * FRAME_SECONDS
            cover[f] += max(0.0, min(w.end, b) - max(w.start, a))
    return cover > min_cover


def matched_start_errors(truth: list[Word], hyp: list[Word]) -> np.ndarray:
    """|start error| in seconds of the words that align between `truth` and `hyp` by text."""
    a = [normalize_text(w.text) for w in truth]
    b = [normalize_text(w.text) for w in hyp]
    errs = []
    for blk in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        errs += [abs(truth[blk.a + k].start - hyp[blk.b + k].start) for k in range(blk.size)]
    return np.array(errs)
