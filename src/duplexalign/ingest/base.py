"""The ingest contract: the reader registry, reader options and what a reader yields.

Owns the interface every ingest reader implements. A reader is a function
`read(input_path, config) -> Iterator[Conversation | Rejected]`: it yields one item per conversation
found in the input, either a parsed `Conversation` or a `Rejected` with a stable reason key. Readers
never raise for bad data; validation of parsed conversations happens in `ingest/validate.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.records import Conversation
from duplexalign.registry import Registry


class IngestConfig(StageConfig):
    """Options of the ingest stage (section `ingest:` of a preset)."""

    format: str = "moshi-finetune"
    """Registered reader name (see `duplexalign ls`)."""
    speaker_map: dict[str, str] = Field(default_factory=lambda: {
        "SPEAKER_MAIN": "model", "SPEAKER_0": "model", "MODEL": "model", "model": "model",
        "SPEAKER_1": "user", "USER": "user", "user": "user"})
    """moshi-finetune speaker label -> channel ("model" or "user")."""
    default_channel: str | None = None
    """Channel for speaker labels missing from `speaker_map`; None quarantines the conversation."""
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


ReadResult = Conversation | Rejected
ReaderFn = Callable[[Path, IngestConfig], Iterator[ReadResult]]

READERS: Registry[ReaderFn] = Registry(
    "ingest format",
    modules=("duplexalign.ingest.moshi_finetune", "duplexalign.ingest.fdb",
             "duplexalign.ingest.jsonl", "duplexalign.ingest.audio"),
)
