"""The ingest contract: the reader registry, reader options and what a reader yields.

Owns the interface every ingest reader implements. A reader is a function
`read(input_path, config, done=()) -> Iterator[ReadResult]`: it yields one item per conversation
found in the input: a parsed `Conversation` (words only), a `Found` (a conversation plus where each
channel's audio lives in the input), a `Pending` (a conversation still to transcribe, resolved by the
stage's engine), a `Rejected` with a stable reason key, or a `Skipped` for an id
in `done` (the ids an earlier run already wrote), so that expensive readers (ASR) need not redo them. Readers
never raise for bad data; validation and audio handling happen in `ingest/validate.py` and
`ingest/stage.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.engine import EngineConfig
from duplexalign.errors import BadInput
from duplexalign.records import Channel, Conversation
from duplexalign.registry import Registry


class IngestConfig(StageConfig):
    """Options of the ingest stage (section `ingest:` of a preset)."""

    input: Path | None = None
    """The input file or folder, as the reader expects it (`duplexalign ingest INPUT` sets it)."""
    format: str = "moshi-finetune"
    """Registered reader name (see `duplexalign ls`)."""
    speaker_map: dict[str, str] = Field(default_factory=lambda: {
        "SPEAKER_MAIN": "model", "MODEL": "model", "model": "model",
        "SPEAKER_OTHER": "user", "SPEAKER_1": "user", "USER": "user", "user": "user"})
    """moshi-finetune speaker label -> channel ("model" or "user"): explicit overrides; labels not
    listed go to `default_channel`."""
    default_channel: Channel | None = "user"
    """Channel of every speaker label missing from `speaker_map`. "user" follows moshi-finetune (the
    main speaker is the model, every other label is the other party); None quarantines such
    conversations (`unknown_speaker`)."""
    allow_outside_paths: bool = False
    """Let paths named by the input (index `path`, JSONL `audio`, symlinks) point outside the input
    folder. Off by default: a log bundle from someone else cannot make ingest read other files.
    Files under /dev, /proc and /sys, FIFOs and devices are refused either way."""
    keep_user_audio: bool = False
    """Carry the user's audio forward (off by default for privacy; the record says it existed)."""
    max_duration: float = 4 * 3600.0
    """Conversations longer than this (seconds) are quarantined as absurd."""
    max_words: int = 200_000
    """Conversations with more words than this are quarantined as absurd."""
    end_tolerance: float = 0.5
    """Words may end this many seconds past the audio's end before the conversation is rejected."""
    asr: str = "whisper"
    """ASR backend for readers without transcripts (format `audio`)."""
    asr_model: str | None = None
    """Local model directory for the ASR backend (None = the bundled default)."""
    require_channels: list[Channel] = Field(default_factory=lambda: ["model", "user"])
    """Channels that must hold at least one word (moshi-finetune's own annotate.py labels only the
    model channel: use `[model]` for such data)."""
    require_audio: bool = True
    """Quarantine conversations whose audio files are missing; False keeps them words-only."""
    overlap_tolerance: float = 0.02
    """Seconds two consecutive words of one channel may overlap (ASR timestamps jitter)."""
    max_word_duration: float = 30.0
    """A single word longer than this (seconds) is absurd and quarantines its conversation."""
    max_file_bytes: int = 64 * 1024 * 1024
    """Transcript files (JSON, one JSONL line) larger than this are absurd."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """Where the per-conversation work (ASR, audio loading and checks) runs (`engine.py`)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input item that could not become a Conversation.

    Attributes:
        item: identifier of the input item (a path or a line reference).
        reason: short stable key, counted in stats.json (e.g. "audio_missing").
        detail: human-readable detail.
    """

    item: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ChannelSource:
    """Where one channel's audio lives in the input.

    Attributes:
        path: the audio file (any rate and format soundfile reads).
        index: channel index inside a multi-channel file; None for a mono file.
    """

    path: Path
    index: int | None = None


@dataclass(frozen=True)
class Found:
    """A parsed conversation whose audio the stage still has to load, check and copy.

    Attributes:
        conversation: words, id, source and meta; its `audio` field is filled in by the stage, and
            its `duration` is replaced by the audio's length once the audio is loaded.
        audio: where each channel's audio lives (channels without audio are absent).
        item: identifier of the input item for quarantine records.
    """

    conversation: Conversation
    audio: dict[Channel, ChannelSource] = field(default_factory=dict)
    item: str = ""


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input item whose conversation id is in `done` (written by an earlier run): the reader did
    not parse it further. The stage still uses it to detect duplicate ids.

    Attributes:
        item: identifier of the input item.
        conversation_id: its conversation id.
    """

    item: str
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Pending:
    """An input item whose conversation needs model work (ASR) before it exists: the stage runs
    `resolve(asr)` on its engine, where a worker holds the ASR model (see `ingest/stage.py`).

    Attributes:
        item: identifier of the input item.
        conversation_id: its conversation id (known before the model work).
        resolve: `asr -> Found | Rejected`; picklable (a partial of a module-level function), so
            that it can run on another machine.
    """

    item: str
    conversation_id: str
    resolve: Callable[..., ReadResult]


ReadResult = Conversation | Found | Rejected | Skipped | Pending


class ReaderFn(Protocol):
    """The reader signature every registered ingest format implements."""

    def __call__(self, input_path: Path, cfg: IngestConfig, done: Collection[str] = ...
                 ) -> Iterator[ReadResult]: ...


logger = logging.getLogger(__name__)


def guarded(item: str, parse: Callable[..., ReadResult], *args: object) -> ReadResult:
    """Run `parse(*args)` for one input item; turn any failure into a `Rejected` so a batch never
    dies.

    `BadInput` keeps its reason; a path the OS cannot take (a NUL byte, a lone surrogate) becomes
    "bad_path"; anything else (a reader bug) becomes "reader_error" and is logged with its traceback.
    """
    try:
        return parse(*args)
    except BadInput as e:
        return Rejected(item, e.reason, e.detail)
    except (ValueError, UnicodeError) as e:
        if isinstance(e, UnicodeEncodeError) or "null byte" in str(e):
            return Rejected(item, "bad_path", f"{type(e).__name__}: {e}"[:500])
        logger.exception("reader failed on %s", item)
        return Rejected(item, "reader_error", f"{type(e).__name__}: {e}"[:500])
    except Exception as e:  # noqa: BLE001 - one bad item must not stop the batch
        logger.exception("reader failed on %s", item)
        return Rejected(item, "reader_error", f"{type(e).__name__}: {e}"[:500])


READERS: Registry[ReaderFn] = Registry(
    "ingest format",
    modules=("duplexalign.ingest.moshi_finetune", "duplexalign.ingest.fdb",
             "duplexalign.ingest.jsonl", "duplexalign.ingest.audio"),
)
