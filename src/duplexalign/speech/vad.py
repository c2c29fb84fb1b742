"""Voice activity detection backends: `silero` (the model shipped inside the silero-vad wheel).

Owns finding speech intervals in one mono channel. Audio reaches the model as a 16 kHz torch tensor
made here (never through silero's own `read_audio`, which needs torchaudio). Intervals are seconds
from the start of the input, sorted and non-overlapping.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from duplexalign.errors import BackendUnavailable
from duplexalign.speech.audio import resample
from duplexalign.speech.base import VAD_BACKENDS

VAD_RATE = 16_000


@VAD_BACKENDS.register("silero")
class SileroVAD:
    """silero-vad v6 (onnx through onnxruntime, or TorchScript with `onnx=False`).

    Args:
        onnx: use the ONNX model (faster on CPU) instead of the TorchScript one.
        threshold: speech probability threshold.
        min_speech: shortest speech interval kept, seconds.
        min_silence: shortest silence that splits two intervals, seconds.
        pad: padding added to both ends of each interval, seconds.
    """

    def __init__(self, onnx: bool = True, threshold: float = 0.5, min_speech: float = 0.25,
                 min_silence: float = 0.1, pad: float = 0.03):
        try:
            import silero_vad
        except ImportError as e:
            raise BackendUnavailable("silero", "pip install silero-vad==6.2.3", str(e)) from e
        self._silero = silero_vad
        with warnings.catch_warnings():  # silero's own importlib.resources deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = silero_vad.load_silero_vad(onnx=onnx)
        self.threshold = threshold
        self.min_speech = min_speech
        self.min_silence = min_silence
        self.pad = pad
        self._lock = threading.Lock()  # the model carries a recurrent state

    def segments(self, wav: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
        """Speech intervals (start, end) in seconds of mono `wav` [S] at `sample_rate`."""
        import torch

        audio = resample(np.asarray(wav, dtype=np.float32), sample_rate, VAD_RATE)
        if len(audio) < 512:
            return []
        with self._lock, torch.inference_mode():
            spans = self._silero.get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(audio)), self.model,
                threshold=self.threshold, sampling_rate=VAD_RATE,
                min_speech_duration_ms=int(self.min_speech * 1000),
                min_silence_duration_ms=int(self.min_silence * 1000),
                speech_pad_ms=int(self.pad * 1000))
        return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in spans]


def frame_labels(intervals: list[tuple[float, float]], duration: float,
                 step: float = 0.01) -> np.ndarray:
    """Boolean speech mask [N] on a `step`-second grid over `duration` (for scoring VAD output)."""
    n = int(np.ceil(duration / step))
    mask = np.zeros(n, dtype=bool)
    for a, b in intervals:
        mask[int(round(a / step)) : int(round(b / step))] = True
    return mask
