"""Builders of small real input datasets for the ingest tests (wavs with soundfile, JSON files).

Two-speaker conversations are spoken with the offline espeak-ng TTS when it is available, else made of
tones (one frequency per channel) with hand-made word timings; either way the words on disk are the
ground truth the tests compare against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.timebase import SAMPLE_RATE

Turn = tuple[str, str, float]  # (channel, text, start seconds)


@dataclass
class Dialogue:
    """A generated conversation: stereo audio [S, 2] (0 = model, 1 = user) and both channels' words
    as (text, start, end) tuples."""

    stereo: np.ndarray
    sample_rate: int
    words: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.stereo) / self.sample_rate


def _tts():
    try:
        from duplexalign.speech.base import TTS_BACKENDS

        return TTS_BACKENDS.get("espeak")()
    except (BackendUnavailable, ConfigError, OSError, ImportError):
        return None


def speak(turns: list[Turn], sample_rate: int = SAMPLE_RATE, tail: float = 0.5) -> Dialogue:
    """Render `turns` into a two-channel dialogue at `sample_rate`."""
    tts = _tts()
    pieces = []
    for ch, text, start in turns:
        if tts is not None:
            sp = tts.synthesize(text)
            wav = sp.wav
            words = [(w.text, start + w.start, start + w.end) for w in sp.words]
        else:  # tones: 0.3 s per word with 0.1 s gaps
            words, chunks = [], []
            for i, t in enumerate(text.split()):
                words.append((t, start + 0.4 * i, start + 0.4 * i + 0.3))
                n = int(0.3 * SAMPLE_RATE)
                f = 220 if ch == "model" else 330
                chunks += [0.3 * np.sin(2 * np.pi * f * np.arange(n) / SAMPLE_RATE),
                           np.zeros(int(0.1 * SAMPLE_RATE))]
            wav = np.concatenate(chunks).astype(np.float32)
        pieces.append((ch, start, wav, words))
    total = max(int(s * SAMPLE_RATE) + len(w) for _, s, w, _ in pieces) + int(tail * SAMPLE_RATE)
    stereo = np.zeros((total, 2), dtype=np.float32)
    words: dict[str, list] = {"model": [], "user": []}
    for ch, start, wav, ws in pieces:
        i = int(start * SAMPLE_RATE)
        stereo[i: i + len(wav), 0 if ch == "model" else 1] += wav
        words[ch] += ws
    for ch in words:
        words[ch].sort(key=lambda w: w[1])
    if sample_rate != SAMPLE_RATE:
        import soxr

        stereo = soxr.resample(stereo, SAMPLE_RATE, sample_rate).astype(np.float32)
        stereo = np.clip(stereo, -1, 1)
    return Dialogue(stereo=stereo, sample_rate=sample_rate, words=words)


DIALOGUES: list[list[Turn]] = [
    [("user", "hello can you hear me", 0.2), ("model", "yes I can hear you well", 1.9),
     ("user", "great thanks", 3.6)],
    [("model", "hi how can I help", 0.1), ("user", "what is the weather", 1.5),
     ("model", "it is sunny today", 2.9)],
    [("user", "tell me a joke", 0.3), ("model", "why did the chicken", 1.6),
     ("user", "ha", 2.2), ("model", "cross the road", 2.8)],
]


def alignments(d: Dialogue, labels=("SPEAKER_MAIN", "SPEAKER_1")) -> list:
    """moshi-finetune alignments of `d`, sorted by start."""
    rows = [[t, [s, e], labels[0]] for t, s, e in d.words["model"]]
    rows += [[t, [s, e], labels[1]] for t, s, e in d.words["user"]]
    return sorted(rows, key=lambda r: r[1][0])


def write_moshi(root: Path, name: str, d: Dialogue, doc: dict | None = None) -> dict:
    """Write `audio/<name>.wav` + `.json` under `root`; returns the index entry."""
    wav = root / "audio" / f"{name}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(wav), d.stereo, d.sample_rate)
    doc = {"alignments": alignments(d)} if doc is None else doc
    wav.with_suffix(".json").write_text(json.dumps(doc))
    return {"path": f"audio/{name}.wav", "duration": d.duration}


def write_index(root: Path, entries: list, name: str = "index.jsonl") -> Path:
    """Write an index file; entries are dicts (dumped) or raw strings (written as is)."""
    p = root / name
    p.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    return p


class FakeASR:
    """Unit-test ASR: one word per 0.5 s of non-silent audio, named after the signal's loudness."""

    calls = 0

    def __init__(self, model: str | None = None):
        self.model = model

    def transcribe(self, wav: np.ndarray, sample_rate: int):
        from duplexalign.records import Word

        FakeASR.calls += 1
        if model_says_fail(wav):
            raise RuntimeError("decoder exploded")
        hop = sample_rate // 2
        return [Word(text=f"w{i}", start=i * 0.5, end=i * 0.5 + 0.4)
                for i in range(len(wav) // hop) if np.abs(wav[i * hop:(i + 1) * hop]).max() > 0.05]


def model_says_fail(wav: np.ndarray) -> bool:
    """FakeASR fails on audio whose first sample is exactly 0.5 (a marker the tests write)."""
    return len(wav) > 0 and abs(float(wav[0]) - 0.5) < 1e-3


def ingest(cfg, input_path, run_dir):
    """`ingest.stage.run` with the input path set in the config (the stage reads it from there)."""
    from duplexalign.ingest.stage import run

    return run(cfg.model_copy(update={"input": input_path}), run_dir)
