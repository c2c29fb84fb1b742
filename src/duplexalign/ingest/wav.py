"""Audio handling of the ingest stage: decode, check, resample to 24 kHz, split and write channels.

Owns how input audio becomes the per-channel mono 24 kHz wavs of a run directory
(`audio/<safe id>/model.wav`, `user.wav`). Problems raise `BadInput` with the reason keys of
`validate.REASONS` (audio_missing, audio_unreadable, audio_mono, audio_empty); a wrong sample rate is
resampled with soxr, never rejected. It knows nothing about words or manifests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from duplexalign.errors import BadInput
from duplexalign.ingest.base import ChannelSource
from duplexalign.records import Channel
from duplexalign.speech.audio import write_audio
from duplexalign.timebase import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
"""File name endings the `audio` reader picks up (what libsndfile decodes)."""


def read_audio(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file.

    Args:
        path: the file.
        max_seconds: refuse (before decoding) files longer than this.

    Returns:
        (samples [S, C] float32, sample_rate).

    Raises:
        BadInput: "audio_missing", "audio_unreadable", "audio_empty" or "too_long".
    """
    if not path.is_file():
        raise BadInput("audio_missing", f"{path} does not exist")
    try:
        if max_seconds is not None:
            info = sf.info(str(path))
            if info.duration > max_seconds:
                raise BadInput("too_long", f"{path} lasts {info.duration:.0f} s "
                                           f"(> max_duration={max_seconds:.0f})")
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
        raise BadInput("audio_unreadable", f"{path}: {e}") from None
    if data.shape[0] == 0:
        raise BadInput("audio_empty", f"{path} holds no samples")
    if not np.isfinite(data).all():
        raise BadInput("audio_unreadable", f"{path} holds NaN or infinite samples")
    return data, int(sr)


def to_24k(x: np.ndarray, sr: int) -> np.ndarray:
    """Resample `x` [S] or [S, C] float32 from `sr` to 24 kHz (a no-op at 24 kHz)."""
    if sr == SAMPLE_RATE:
        return x
    return soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32, copy=False)


def load_channels(sources: dict[Channel, ChannelSource], max_seconds: float | None = None
                  ) -> tuple[dict[Channel, np.ndarray], bool]:
    """Decode every channel's audio at 24 kHz, reading each file once.

    Args:
        sources: where each channel's audio lives.
        max_seconds: refuse files longer than this before decoding them ("too_long").

    Returns:
        ({channel: mono samples [S] float32 at 24 kHz}, True if any file was resampled).

    Raises:
        BadInput: the reason of the first channel that cannot be loaded (a missing channel index in
            a mono file is "audio_mono").
    """
    files: dict[Path, tuple[np.ndarray, int]] = {}
    out: dict[Channel, np.ndarray] = {}
    resampled = False
    for ch, src in sources.items():
        if src.path not in files:
            files[src.path] = read_audio(src.path, max_seconds)
        data, sr = files[src.path]
        if src.index is None:
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        elif src.index >= data.shape[1]:
            kind = "audio_mono" if data.shape[1] == 1 else "audio_unreadable"
            raise BadInput(kind, f"{src.path} has {data.shape[1]} channel(s); the {ch} channel "
                                 f"is expected at index {src.index}")
        else:
            mono = data[:, src.index]
        resampled |= sr != SAMPLE_RATE
        out[ch] = to_24k(np.ascontiguousarray(mono), sr)
    return out, resampled


def write_mono(path: Path, wav: np.ndarray) -> None:
    """Write mono `wav` [S] float32 at 24 kHz as 16-bit PCM (clipped to [-1, 1]), atomically."""
    tmp = path.with_name(path.name + ".tmp.wav")
    write_audio(tmp, wav, SAMPLE_RATE)
    tmp.replace(path)
