"""The speech contracts: what a TTS, ASR, VAD and codec backend must provide, and their registries.

Owns the protocols and the registries only; each backend lives in its own module and imports its
heavy dependency inside its constructor. All waveforms crossing these interfaces are mono float32 numpy
arrays at 24 kHz (`timebase.SAMPLE_RATE`) unless a `sample_rate` says otherwise; times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from duplexalign.records import Word
from duplexalign.registry import Registry


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: waveform `wav` [S] float32 at `sample_rate` and its word timings
    (seconds from the start of `wav`). Backends that know them also give phone timings
    (`phones`: (phone name, start, end) in seconds, pauses included), which fit the semantic
    codec's phonetic student."""

    wav: np.ndarray
    sample_rate: int
    words: list[Word]
    phones: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.wav) / self.sample_rate


class TTS(Protocol):
    """Text to speech with word timings."""

    name: str

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; returns 24 kHz audio and one Word per spoken word."""
        ...


class ASR(Protocol):
    """Speech recognition with word timestamps."""

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> list[Word]:
        """Words of mono `wav` [S] with start/end in seconds."""
        ...


class VAD(Protocol):
    """Voice activity detection."""

    def segments(self, wav: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
        """Speech intervals (start, end) in seconds of mono `wav` [S]."""
        ...


class Codec(Protocol):
    """A 12.5 Hz multi-codebook audio codec (Mimi or MelRVQ)."""

    num_codebooks: int
    cardinality: int

    def encode(self, wav: np.ndarray) -> np.ndarray:
        """Codes [K, T] int64 of mono 24 kHz `wav` [S], T = timebase.samples_to_frames(S)."""
        ...

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Mono 24 kHz waveform [T * 1920] float32 of `codes` [K, T]."""
        ...


TTS_BACKENDS: Registry = Registry("tts backend", modules=("duplexalign.speech.tts",))
ASR_BACKENDS: Registry = Registry("asr backend", modules=("duplexalign.speech.asr",))
VAD_BACKENDS: Registry = Registry("vad backend", modules=("duplexalign.speech.vad",))
CODECS: Registry = Registry("codec", modules=("duplexalign.speech.codec",))
