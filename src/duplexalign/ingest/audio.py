"""Reader of transcript-less stereo recordings (registered as `audio`), and the ASR glue of ingest.

Owns turning a folder of stereo recordings (channel 0 = model, channel 1 = user; any rate, resampled
to 24 kHz) into conversations by running the configured ASR backend
(`speech.base.ASR_BACKENDS.get(cfg.asr)(model=cfg.asr_model)`) on each channel; the reader yields
`Pending` items whose ASR the stage runs on its engine (a worker builds the backend once). The conversation id is
the file's path relative to the folder, without extension; files are opened through
`files.confine` and symlinked folders are not followed. Other readers use `make_asr` and
`transcribe` when a channel has audio but no transcript.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from functools import partial
from pathlib import Path

import numpy as np

from duplexalign.errors import BadInput
from duplexalign.ingest.base import (
    READERS,
    ChannelSource,
    Found,
    IngestConfig,
    Pending,
    ReadResult,
    Rejected,
    Skipped,
)
from duplexalign.ingest.files import confine, input_root, walk
from duplexalign.ingest.validate import make_word
from duplexalign.ingest.wav import AUDIO_SUFFIXES, load_channels
from duplexalign.records import ChannelWords, Conversation, Source, Word
from duplexalign.runs import sha256_file
from duplexalign.speech.base import ASR, ASR_BACKENDS
from duplexalign.timebase import SAMPLE_RATE

NAME = "audio"
logger = logging.getLogger(__name__)


def make_asr(cfg: IngestConfig) -> ASR:
    """The ASR backend named by `cfg.asr`, built with `cfg.asr_model` (None = its default).

    Raises:
        ConfigError: unknown backend name; BackendUnavailable: its dependency is missing.
    """
    return ASR_BACKENDS.get(cfg.asr)(model=cfg.asr_model)


def transcribe(asr: ASR, wav: np.ndarray, what: str) -> list[Word]:
    """Words of mono 24 kHz `wav` [S]; every failure becomes BadInput("asr_failed")."""
    try:
        raw = asr.transcribe(wav, SAMPLE_RATE)
    except Exception as e:  # noqa: BLE001 - a backend failure on one item must not stop the batch
        raise BadInput("asr_failed", f"{what}: {type(e).__name__}: {e}") from None
    words = [make_word(w.text, w.start, w.end, f"{what} asr word {i}") for i, w in enumerate(raw)]
    return sorted((w for w in words if w.text), key=lambda w: w.start)


def audio_files(input_path: Path, cfg: IngestConfig) -> tuple[list[Path], list[Rejected]]:
    """Audio files under `input_path` (recursively, sorted; symlinked folders are not followed and
    each gets a `Rejected`), or the file itself."""
    if input_path.is_file():
        return [input_path], []
    files: list[Path] = []
    skipped: list[Rejected] = []
    for entry in walk(input_path, cfg):
        if isinstance(entry, Rejected):
            skipped.append(entry)
        else:
            files += [entry[0] / n for n in entry[1] if Path(n).suffix.lower() in AUDIO_SUFFIXES]
    return sorted(files), skipped


@READERS.register(NAME)
def read(input_path: Path, cfg: IngestConfig, done: Collection[str] = ()) -> Iterator[ReadResult]:
    """Yield one `Pending` per recording (its ASR runs on the stage's engine: `resolve(asr)`;
    `Skipped` for ids in `done`), and a `Rejected` per symlinked folder not followed."""
    input_path = Path(input_path)
    files, skipped = audio_files(input_path, cfg) if input_path.exists() else ([], [])
    yield from skipped
    if not files:
        yield Rejected(str(input_path), "input_missing", "no audio files found")
        return
    checked = False
    base = input_path if input_path.is_dir() else input_path.parent
    root = input_root(input_path)
    for path in files:
        conv_id = str(path.relative_to(base).with_suffix(""))
        if conv_id in done:
            yield Skipped(str(path), conv_id)
            continue
        if not checked:  # an unknown backend is a config error before any work
            ASR_BACKENDS.get(cfg.asr)
            checked = True
        yield Pending(str(path), conv_id, partial(_recording, path, root, conv_id, cfg))


def _recording(path: Path, root: Path, conv_id: str, cfg: IngestConfig, asr: ASR) -> Found:
    path = confine(path, root, cfg, "audio")
    sources = {"model": ChannelSource(path, 0), "user": ChannelSource(path, 1)}
    wavs, _ = load_channels(sources, cfg.max_duration)
    words = ChannelWords(model=transcribe(asr, wavs["model"], "model"),
                         user=transcribe(asr, wavs["user"], "user"))
    duration = max(len(w) for w in wavs.values()) / SAMPLE_RATE
    conv = Conversation(id=conv_id, words=words, duration=duration,
                        source=Source(reader=NAME, path=str(path), digest=sha256_file(path)),
                        meta={"asr": type(asr).__name__})
    return Found(conv, sources, str(path))
