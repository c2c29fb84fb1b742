"""The data model: the typed records that cross stage boundaries.

Owns `Word`, `Conversation`, `Segment`, `Issue`, `ReplyVariant` and `PreferencePair` (ARCHITECTURE.md
section 3). Records are immutable pydantic v2 models that round-trip through JSON; a change returns a
copy (`record.model_copy(update=...)`). Time is always in seconds here; integer frames exist only inside
`streams/`, `train/` and `evaluate/`. Records know nothing about files beyond the paths they carry.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Channel = Literal["model", "user"]
CHANNELS: tuple[Channel, Channel] = ("model", "user")

CONTENT_CATEGORIES: tuple[str, ...] = (
    "helpfulness",
    "safety",
    "factuality",
    "instruction_adherence",
    "tone",
)
TIMING_CATEGORIES: tuple[str, ...] = (
    "interruption",
    "unresponsiveness",
    "no_yield",
    "pause_takeover",
)


class Record(BaseModel):
    """Base of every record: immutable, strict about unknown fields, JSON round-trip."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the record."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build the record from a dict such as `to_dict` returns; raises pydantic.ValidationError."""
        return cls.model_validate(data)


class Word(Record):
    """One timed word of one channel. `start`/`end` in seconds from the conversation start."""

    text: str
    start: float
    end: float

    @model_validator(mode="after")
    def _times(self) -> Word:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError("word times must be finite")
        if self.start < 0:
            raise ValueError("word start must be >= 0")
        if self.end < self.start:
            raise ValueError("word end must be >= start")
        return self


class ChannelWords(Record):
    """Both channels' words, each sorted by start time."""

    model: list[Word] = Field(default_factory=list)
    user: list[Word] = Field(default_factory=list)

    def of(self, channel: Channel) -> list[Word]:
        """Words of `channel`."""
        return self.model if channel == "model" else self.user


class ChannelAudio(Record):
    """Audio file path per channel, or None when absent (user audio is dropped by default)."""

    model: str | None = None
    user: str | None = None


class Source(Record):
    """Provenance of a conversation: which reader made it from which file (and its sha256)."""

    reader: str
    path: str
    digest: str


class Conversation(Record):
    """One two-channel conversation.

    Attributes:
        id: stable id (unique within a run).
        words: both channels' timed words.
        duration: length in seconds.
        audio: audio paths per channel (mono wav/flac at any rate) or None.
        user_audio_existed: True when the log had user audio, even if it was not carried forward.
        source: reader name, input path and input digest.
        meta: free-form metadata from the log (scenario ids, speaker labels, ...).
    """

    id: str
    words: ChannelWords
    duration: float
    audio: ChannelAudio = Field(default_factory=ChannelAudio)
    user_audio_existed: bool = False
    source: Source
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:
            raise ValueError("duration must be a positive finite number of seconds")
        return v


class Segment(Record):
    """A maximal run of one channel's words whose inner gaps are below a threshold.

    A model segment is a *reply*. Derived from words (see `segments.py`), never stored by readers.
    `id` is the reply's `reply_id` for model segments made by `segments.replies`, else "";
    `first_word` is the index of its first word in the word list it was made from.
    """

    channel: Channel
    start: float
    end: float
    words: list[Word]
    id: str = ""
    first_word: int = 0

    @property
    def word_range(self) -> tuple[int, int]:
        """[first, end) indices of the segment's words in the list it was made from."""
        return (self.first_word, self.first_word + len(self.words))

    @property
    def text(self) -> str:
        """The segment's words joined by spaces."""
        return " ".join(w.text for w in self.words)


class JudgeInfo(Record):
    """Which judge produced a verdict: name, prompt template id, model and cache key."""

    name: str
    prompt_id: str = ""
    model: str = ""
    cache_key: str = ""


class Issue(Record):
    """A problem found in one model reply (or in a missing reply).

    Attributes:
        id: stable id, unique within the run.
        conversation_id: the conversation it belongs to.
        reply_id: the reply it concerns, assigned once by the annotate stage
            (`segments.reply_id`), or the missing reply of a silence (`segments.silence_id`);
            issues about one reply share it, and pairs group issues by it.
        reply_words: [first, end) indices of the reply's words in the conversation's model
            channel (`words.model`); first == end for a silence (where the missing reply goes).
        reply_span: (start, end) seconds of the reply, or of the silence for unresponsiveness
            (evidence for people; no stage finds a reply by it).
        kind: "content" (LLM judge) or "timing" (rules).
        category: one of CONTENT_CATEGORIES or TIMING_CATEGORIES.
        score: 1 (bad) .. 5 (good) for content categories; None for timing rules.
        reason: short human-readable reason.
        user_turn: timing issues: (start, end) seconds of the user turn concerned (the turn cut
            into, the turn left unanswered, the barge-in), else None.
        pause: pause_takeover: (start, end) seconds of the user pause the model spoke into.
        evidence: the data behind the finding (spans, words, thresholds), for people: no stage
            reads it (what a later stage needs is a typed field above).
        judge: which judge, prompt, model and cache key.
        improved_reply: the judge's better reply text, if it wrote one.
    """

    id: str
    conversation_id: str
    reply_id: str
    reply_words: tuple[int, int]
    reply_span: tuple[float, float]
    kind: Literal["content", "timing"]
    category: str
    score: int | None = Field(default=None, ge=1, le=5)
    reason: str
    user_turn: tuple[float, float] | None = None
    pause: tuple[float, float] | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    judge: JudgeInfo
    improved_reply: str | None = None

    @model_validator(mode="after")
    def _category(self) -> Issue:
        allowed = CONTENT_CATEGORIES if self.kind == "content" else TIMING_CATEGORIES
        if self.category not in allowed:
            raise ValueError(f"category {self.category!r} is not a {self.kind} category {allowed}")
        return self


class ReplyVariant(Record):
    """One version of the model's reply inside a pair window.

    Attributes:
        words: the model's timed words inside the window (absolute conversation seconds).
        audio: path of the model-channel waveform for the window (24 kHz mono), or None for silence.
    """

    words: list[Word] = Field(default_factory=list)
    audio: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        # manifests written before issue 17 carry an always-null `codes_ref`
        if isinstance(data, dict) and data.get("codes_ref", 0) is None:
            data = {k: v for k, v in data.items() if k != "codes_ref"}
        return data

    @property
    def text(self) -> str:
        """The variant's words joined by spaces ("" for silence)."""
        return " ".join(w.text for w in self.words)


class PreferencePair(Record):
    """A preference pair: the same context and user stream, two versions of the model's reply.

    Invariant: chosen and rejected share the context [context_start, window[0]) and the user stream;
    only the model's streams inside `window` differ, and both windows have the same length.

    Attributes:
        id: stable pair id.
        conversation_id: the source conversation.
        window: (start, end) seconds where the two variants differ.
        context_start: where the shared context begins (seconds).
        chosen / rejected: the two reply variants.
        reply_id: the reply (or missing reply) the pair replaces (`Issue.reply_id`).
        issue_ids: the issues that motivated the pair.
        strategy: the pair strategy name (rewrite, retime, insert, voice).
        category: "content", "interruption" or "silence" (the paper's three kinds).
        voice: the model voice used to speak the chosen reply.
        rejected_source: "logged" when the rejected variant is the logged model audio (streams
            reuses the logged codes), "tts" when it was re-spoken (voice transfer).
        meta: diagnostics for people (gaps, shifts, original text); no stage reads it.
    """

    id: str
    conversation_id: str
    reply_id: str = ""
    window: tuple[float, float]
    context_start: float
    chosen: ReplyVariant
    rejected: ReplyVariant
    issue_ids: list[str]
    strategy: str
    category: Literal["content", "interruption", "silence"]
    voice: str = ""
    rejected_source: Literal["logged", "tts"] = "logged"
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        # pairs written before issue 17 kept `rejected_source` in `meta`
        if isinstance(data, dict) and "rejected_source" not in data and isinstance(
                data.get("meta"), dict) and "rejected_source" in data["meta"]:
            meta = dict(data["meta"])
            data = {**data, "rejected_source": meta.pop("rejected_source"), "meta": meta}
        return data

    @model_validator(mode="after")
    def _window(self) -> PreferencePair:
        s, e = self.window
        if not (0 <= self.context_start <= s < e):
            raise ValueError("need 0 <= context_start <= window start < window end")
        return self


Verdict = Literal["confirm", "reject", "edit", "flag", "prefer_chosen", "prefer_rejected",
                  "neither", "rate"]
"""What a reviewer decided: about an issue (confirm / reject / edit its improved reply), about a
reply the judges missed (flag), about a pair (prefer_chosen / prefer_rejected / neither), or
ratings of a conversation (rate)."""

_VERDICTS_OF: dict[str, tuple[str, ...]] = {
    "issue": ("confirm", "reject", "edit"),
    "reply": ("flag",),
    "pair": ("prefer_chosen", "prefer_rejected", "neither"),
    "conversation": ("rate",),
}


class Rating(Record):
    """A reviewer's 1-5 ratings of a conversation's first `at` seconds (the paper's human
    evaluation of multi-turn quality at 30 / 90 / 120 s)."""

    at: Literal[30, 90, 120]
    coherence: int = Field(ge=1, le=5)
    engagement: int = Field(ge=1, le=5)
    relevance: int = Field(ge=1, le=5)


class Decision(Record):
    """One human decision, appended to RUN/review/decisions.jsonl.gz (never rewritten).

    The latest decision of a reviewer about a target replaces that reviewer's earlier ones
    (`review.store.latest`); earlier ones stay in the log as history.

    Attributes:
        id: unique id of this entry (a second entry about the same target gets a new id).
        reviewer: who decided.
        time: when, in seconds since the epoch (UTC).
        target: "issue", "reply" (a reply the judges missed), "pair" or "conversation".
        target_id: the `Issue.id`, `Issue.reply_id`-style reply id, `PreferencePair.id`, or
            `Conversation.id` (ratings: one target per rating point, see `target_key`).
        conversation_id: the conversation the target belongs to.
        verdict: the decision (which verdicts a target allows: `_VERDICTS_OF`).
        reason: the reviewer's optional reason (a reject's why, a flag's note).
        text: verdict "edit": the reviewer's improved reply, which becomes the chosen text.
        category: verdict "flag": the issue category the judges missed.
        shown_first: pairs: which variant was played as A ("chosen" or "rejected"; A/B order
            is blind to the reviewer).
        rating: verdict "rate": the ratings.
        origin: where the decision was made ("web", or "label-studio" for imported ones).
    """

    id: str
    reviewer: str = Field(min_length=1)
    time: float
    target: Literal["issue", "reply", "pair", "conversation"]
    target_id: str = Field(min_length=1)
    conversation_id: str
    verdict: Verdict
    reason: str = ""
    text: str | None = None
    category: str | None = None
    shown_first: Literal["chosen", "rejected"] | None = None
    rating: Rating | None = None
    origin: str = "web"

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.verdict not in _VERDICTS_OF[self.target]:
            raise ValueError(f"verdict {self.verdict!r} is not one of "
                             f"{_VERDICTS_OF[self.target]} for a {self.target}")
        if self.verdict == "edit" and not (self.text and self.text.strip()):
            raise ValueError("an edit needs the improved reply text")
        if self.verdict == "flag" and self.category not in CONTENT_CATEGORIES + TIMING_CATEGORIES:
            raise ValueError("a flag needs an issue category")
        if (self.verdict == "rate") != (self.rating is not None):
            raise ValueError("ratings go with verdict 'rate' only")
        return self

    @property
    def target_key(self) -> str:
        """What a later decision of the same reviewer replaces: the target (and the rating
        point of a rating, the category of a flag: a reply may miss several categories)."""
        extra = (f"@{self.rating.at}" if self.rating is not None
                 else f"/{self.category}" if self.verdict == "flag" else "")
        return f"{self.target}:{self.target_id}{extra}"
