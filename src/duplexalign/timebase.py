"""The only place where seconds become frames and samples.

Moshi runs at 12.5 frames per second on 24 kHz audio, so one frame is exactly 1920 samples. Records keep
time in seconds; `streams/`, `train/` and `evaluate/` convert through these helpers, which round through
sample counts so that seconds -> frames -> seconds is stable and every stage agrees on frame edges.
"""

from __future__ import annotations

import math

SAMPLE_RATE: int = 24_000
FRAME_RATE: float = 12.5
SAMPLES_PER_FRAME: int = 1920
FRAME_SECONDS: float = SAMPLES_PER_FRAME / SAMPLE_RATE  # 0.08 s

Seconds = float


def seconds_to_samples(t: Seconds, sample_rate: int = SAMPLE_RATE) -> int:
    """Nearest sample index of time `t` (seconds); exact halves round up (never to even)."""
    return math.floor(t * sample_rate + 0.5)


def samples_to_seconds(n: int, sample_rate: int = SAMPLE_RATE) -> Seconds:
    """Time in seconds of sample index `n`."""
    return n / sample_rate


def seconds_to_frame(t: Seconds) -> int:
    """Index of the 12.5 Hz frame that contains time `t` (floor, through the sample count).

    Frame f covers samples [f * 1920, (f + 1) * 1920).
    """
    return seconds_to_samples(t) // SAMPLES_PER_FRAME


def frame_to_seconds(frame: int) -> Seconds:
    """Start time in seconds of frame `frame`."""
    return frame * SAMPLES_PER_FRAME / SAMPLE_RATE


def num_frames(duration: Seconds) -> int:
    """Frames needed to cover `duration` seconds (ceil, as Mimi's encoder pads the last frame)."""
    return math.ceil(seconds_to_samples(duration) / SAMPLES_PER_FRAME)


def samples_to_frames(n_samples: int) -> int:
    """Frames needed to cover `n_samples` samples at 24 kHz (ceil)."""
    return math.ceil(n_samples / SAMPLES_PER_FRAME)
