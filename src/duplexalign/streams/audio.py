"""Audio codes for the streams: codec loading, user-channel rebuild by TTS, window encoding.

Owns turning waveforms into `[K, T]` codes at 12.5 Hz with a codec from `speech.base.CODECS`, and
rebuilding a user channel that was dropped for privacy: each user turn is spoken by a user voice and cut
into per-word pieces at the TTS word boundaries; each piece is placed at the original word's start and
cut where the next original word starts (as the paper did: TTS from the transcript at the original
times). Variant windows are encoded with some preceding logged audio (`margin`) so that a codec with a
receptive field sees the same left context as in the whole-conversation encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from duplexalign.records import Word
from duplexalign.segments import to_segments
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME, seconds_to_samples


def load_codec(name: str, path: str | None) -> Any:
    """The codec registered as `name`, loaded from the local `path`."""
    from duplexalign.speech.base import CODECS

    return CODECS.get(name)(path=path)


def encode(codec: Any, wav: np.ndarray, num_frames: int) -> np.ndarray:
    """Codes `[K, num_frames]` int64 of mono 24 kHz `wav` `[S]` (zero-padded or cut to fit)."""
    return encode_many(codec, [wav], num_frames)[0]


def encode_many(codec: Any, wavs: Sequence[np.ndarray], num_frames: int) -> list[np.ndarray]:
    """`encode` of several waveforms `[S]`, through the codec's batch encoder when it has one."""
    n = num_frames * SAMPLES_PER_FRAME
    bufs = []
    for wav in wavs:
        buf = np.zeros(n, dtype=np.float32)
        m = min(n, len(wav))
        buf[:m] = wav[:m]
        bufs.append(buf)
    raw = (codec.encode_batch(bufs) if hasattr(codec, "encode_batch")
           else [codec.encode(b) for b in bufs])
    out = [np.asarray(c, dtype=np.int64) for c in raw]
    for codes in out:
        if codes.shape[1] != num_frames:
            raise RuntimeError(f"codec returned {codes.shape[1]} frames for {num_frames}")
    return out


def encode_window(codec: Any, context_wav: np.ndarray, window_wav: np.ndarray,
                  window_start_frame: int, margin_frames: int) -> np.ndarray:
    """Codes `[K, W]` of `window_wav` `[W * 1920]`, encoded after up to `margin_frames` frames of
    `context_wav` `[S]` (the logged channel) that precede the window."""
    w = len(window_wav) // SAMPLES_PER_FRAME
    m0 = max(0, window_start_frame - margin_frames)
    lead = np.zeros((window_start_frame - m0) * SAMPLES_PER_FRAME, dtype=np.float32)
    seg = context_wav[m0 * SAMPLES_PER_FRAME:window_start_frame * SAMPLES_PER_FRAME]
    lead[:len(seg)] = seg
    codes = encode(codec, np.concatenate([lead, window_wav]), window_start_frame - m0 + w)
    return codes[:, -w:] if w else codes[:, :0]


def rebuild_user_audio(words: Sequence[Word], duration: float, tts: Any,
                       turn_gap: float = 0.8) -> np.ndarray:
    """A user channel `[round(duration * 24000)]` spoken by `tts` with each word at its time.

    Each turn (words split at `turn_gap` s) is synthesised once; when the TTS returns as many words
    as the turn has, the audio is cut at the TTS word starts and each piece is placed at the
    original word's start (cut at the next original word's start); otherwise the whole turn is
    placed at the turn's start.
    """
    from duplexalign.speech.audio import place, resample

    clips: list[tuple[float, np.ndarray]] = []
    for turn in to_segments(list(words), "user", turn_gap):
        sp = tts.synthesize(turn.text)
        wav = resample(np.asarray(sp.wav, dtype=np.float32), sp.sample_rate, SAMPLE_RATE)
        if len(sp.words) != len(turn.words):
            clips.append((turn.start, wav))
            continue
        cuts = [seconds_to_samples(w.start) for w in sp.words[1:]] + [len(wav)]
        begin = 0
        for i, (orig, cut) in enumerate(zip(turn.words, cuts, strict=True)):
            piece = wav[begin:cut]
            if i + 1 < len(turn.words):
                room = seconds_to_samples(turn.words[i + 1].start - orig.start)
                piece = piece[:max(room, 0)]
            clips.append((orig.start, piece))
            begin = cut
    return place(clips, duration)
