"""Audio I/O for every stage: reading, writing, resampling and mixing waveforms.

Owns the conversion between files (wav/flac/ogg/mp3 through soundfile) and the float32 numpy arrays
used everywhere else, resampling with soxr, channel split/merge and `place`, which mixes timed clips
onto a silent timeline (how a model or user channel is rebuilt from synthesised turns). It knows
nothing about speech content; sample rates default to `timebase.SAMPLE_RATE` (24 kHz).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from duplexalign.errors import BadInput
from duplexalign.timebase import SAMPLE_RATE, seconds_to_samples


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample `wav` [S] or [C, S] from `sr_in` to `sr_out` Hz with soxr (high quality).

    Returns float32 with the same leading shape; identity (as float32) when the rates are equal.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if sr_in == sr_out:
        return wav
    if wav.ndim == 1:
        return soxr.resample(wav, sr_in, sr_out).astype(np.float32, copy=False)
    # soxr wants [S, C]
    return np.ascontiguousarray(soxr.resample(wav.T, sr_in, sr_out).T, dtype=np.float32)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
               channel: int | None = None) -> np.ndarray:
    """Read an audio file as float32, resampled to `sample_rate`.

    Args:
        path: any format libsndfile reads (wav, flac, ogg/vorbis, ogg/opus, mp3).
        sample_rate: output rate in Hz.
        channel: None keeps every channel; an int selects one.

    Returns:
        [S] for mono files or when `channel` is given, else [C, S].

    Raises:
        BadInput: reason "audio_unreadable" if the file cannot be decoded, "audio_channel_missing"
            if `channel` does not exist.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [S, C]
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise BadInput("audio_unreadable", f"{path}: {e}") from e
    wav = data.T  # [C, S]
    if channel is not None:
        if not 0 <= channel < wav.shape[0]:
            raise BadInput("audio_channel_missing",
                           f"{path} has {wav.shape[0]} channel(s), asked for channel {channel}")
        wav = wav[channel]
    elif wav.shape[0] == 1:
        wav = wav[0]
    return resample(np.ascontiguousarray(wav), sr, sample_rate)


def write_audio(path: str | Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write `wav` [S] or [C, S] to `path`; the format follows the suffix (.wav is 16-bit PCM).

    Parent folders are created. The file is encoded in memory and written in one go: libsndfile
    fsyncs every file it closes, which made a stage of many short wavs wait on the disk (and
    serialised parallel workers on it); like the manifests, the wavs are left to the page cache.
    Returns the path written.
    """
    path = Path(path)
    fmt = path.suffix[1:].upper()
    if fmt not in sf.available_formats():
        raise ValueError(f"{path}: unknown audio format {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = np.asarray(wav, dtype=np.float32)
    data = wav if wav.ndim == 1 else wav.T
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), sample_rate, format=fmt,
             subtype="PCM_16" if fmt == "WAV" else None)
    path.write_bytes(buf.getbuffer())
    return path


def split_channels(wav: np.ndarray) -> list[np.ndarray]:
    """Split [C, S] into C mono arrays [S] (a mono [S] input gives a list of one)."""
    wav = np.asarray(wav, dtype=np.float32)
    return [wav] if wav.ndim == 1 else [np.ascontiguousarray(c) for c in wav]


def merge_channels(channels: Sequence[np.ndarray]) -> np.ndarray:
    """Stack mono arrays [S_i] into [C, max S_i], zero-padding the shorter ones at the end."""
    if not channels:
        raise ValueError("merge_channels needs at least one channel")
    n = max(len(c) for c in channels)
    out = np.zeros((len(channels), n), dtype=np.float32)
    for i, c in enumerate(channels):
        out[i, : len(c)] = c
    return out


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average [C, S] to [S]; a mono [S] is returned as float32."""
    wav = np.asarray(wav, dtype=np.float32)
    return wav if wav.ndim == 1 else wav.mean(axis=0)


def place(segments: Sequence[tuple[float, np.ndarray]], duration: float,
          sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mix timed clips onto a silent timeline.

    Args:
        segments: (start_seconds, wav [S_i]) pairs; overlapping clips are summed, clips running past
            `duration` are cut.
        duration: timeline length in seconds.
        sample_rate: rate of the clips and of the output.

    Returns:
        [round(duration * sample_rate)] float32.
    """
    n = seconds_to_samples(duration, sample_rate)
    out = np.zeros(n, dtype=np.float32)
    for start, clip in segments:
        if start < 0:
            raise ValueError(f"clip start must be >= 0, got {start}")
        a = seconds_to_samples(start, sample_rate)
        if a >= n:
            continue
        clip = np.asarray(clip, dtype=np.float32)
        b = min(n, a + len(clip))
        out[a:b] += clip[: b - a]
    return out


def add_noise(wav: np.ndarray, snr_db: float, seed: int = 0,
              reference: np.ndarray | None = None) -> np.ndarray:
    """Add white Gaussian noise at `snr_db` relative to the power of `reference` (default `wav`).

    Args:
        wav: [S] signal.
        snr_db: signal-to-noise ratio in dB, measured against the mean power of the non-silent
            samples of `reference`.
        seed: noise seed.
        reference: [S'] signal whose speech power sets the noise level.
    """
    ref = np.asarray(wav if reference is None else reference, dtype=np.float64)
    active = ref[np.abs(ref) > 1e-4]
    power = float(np.mean(active**2)) if active.size else 1e-8
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(wav))
    return (np.asarray(wav, dtype=np.float32) + noise.astype(np.float32)).astype(np.float32)


AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".opus", ".mp3")


def list_audio_files(folder: str | Path) -> list[Path]:
    """Audio files (by suffix, see `AUDIO_SUFFIXES`) under `folder`, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput("audio_dir_missing", f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                  and p.is_file())
