"""The pair-strategy contract: what a strategy receives, what it returns, and the registry.

Owns `STRATEGIES` (name -> strategy function), `Candidate` (one problematic reply to turn into a pair),
`Clip` (a reply placed in time: words and audio) and `PairEnv` (what a strategy may use for one
conversation: the logged model audio, segments, voices and the rewriter). A strategy is a function
`build(candidate, env) -> Built` that decides the chosen (and, for voice transfer, the rejected) clip
and calls `assemble.assemble`, which owns the window geometry and the invariant. A strategy that cannot
make a pair raises `BadInput(reason)`; the stage counts the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from duplexalign.pairs.config import PairsConfig
from duplexalign.records import Conversation, Issue, PreferencePair, Segment, Word
from duplexalign.registry import Registry
from duplexalign.segments import to_segments
from duplexalign.text import safe_id
from duplexalign.timebase import SAMPLE_RATE


@dataclass(frozen=True)
class Candidate:
    """One problematic reply (or silence) of a conversation and the issues about it.

    Attributes:
        conversation: the conversation.
        issues: the issues that concern this reply (content and/or timing): they share `reply_id`.
        span: (start, end) seconds of the reply, or of the silence for unresponsiveness.
        category: pair category, "content", "interruption" or "silence".
        strategy: registered strategy name.
        reply_id: the reply's id (`Issue.reply_id`).
        reply_words: [first, end) indices of the reply's words in the model channel.
        reviewed_reply: a reviewer's edited reply text (`pairs.review`), which wins over every
            judge's improved reply; it enters the pair id, so a new edit makes a new pair.
    """

    conversation: Conversation
    issues: tuple[Issue, ...]
    span: tuple[float, float]
    category: str
    strategy: str
    reply_id: str = ""
    reply_words: tuple[int, int] = (0, 0)
    reviewed_reply: str | None = None

    @property
    def id(self) -> str:
        """Stable pair id: conversation, strategy and span onset in milliseconds (and a digest
        of the reviewed reply, when a reviewer edited it)."""
        base = f"{safe_id(self.conversation.id)}-{self.strategy}-{round(self.span[0] * 1000):07d}"
        if self.reviewed_reply is None:
            return base
        return f"{base}-r{hashlib.sha256(self.reviewed_reply.encode()).hexdigest()[:8]}"

    def words(self) -> list[Word]:
        """The logged model words of the reply (by index: no search by time)."""
        a, b = self.reply_words
        return list(self.conversation.words.model[a:b])

    def timing_issue(self) -> Issue | None:
        """The first timing issue of the candidate, if any."""
        return next((i for i in self.issues if i.kind == "timing"), None)

    def improved_reply(self) -> str | None:
        """The reviewer's edited reply, else the first non-empty improved reply a content judge
        wrote for this reply."""
        if self.reviewed_reply and self.reviewed_reply.strip():
            return self.reviewed_reply.strip()
        for i in self.issues:
            if i.kind == "content" and i.improved_reply and i.improved_reply.strip():
                return i.improved_reply.strip()
        return None


@dataclass(frozen=True)
class Clip:
    """A reply placed in time: its words (absolute seconds) and its audio from `start`.

    Attributes:
        start: onset of `wav` in conversation seconds.
        wav: [S] float32 24 kHz.
        words: the reply's words, absolute seconds.
    """

    start: float
    wav: np.ndarray
    words: list[Word]

    @property
    def end(self) -> float:
        """End of the audio in conversation seconds."""
        return self.start + len(self.wav) / SAMPLE_RATE

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass
class Built:
    """A pair and the window audio of both variants (written by the stage).

    Attributes:
        pair: the record, with audio paths relative to the run directory.
        chosen_wav / rejected_wav: [W * 1920] float32 each (the window's model channel).
        chosen_clip: the chosen reply as placed (lets voice transfer reassemble the pair).
        anchor: earliest time (s) the window had to cover (lets voice transfer reassemble it).
    """

    pair: PreferencePair
    chosen_wav: np.ndarray
    rejected_wav: np.ndarray
    chosen_clip: Clip | None = None
    anchor: float = 0.0


class Rewriter(Protocol):
    """What the pairs stage needs from the judges' rewriter (`judges.rewriter.Rewriter`)."""

    def rewrite(self, context: list[tuple[str, str]], problems: list[str], bad_reply: str) -> str:
        """A better reply to replace `bad_reply` after `context` ((speaker, text) turns)."""
        ...

    def write_reply(self, context: list[tuple[str, str]]) -> str:
        """A reply for the model to say after `context`."""
        ...


@dataclass
class PairEnv:
    """Everything a strategy may use for one conversation.

    Attributes:
        conversation: the conversation.
        cfg: the stage config.
        model_audio: loader of the logged model channel `[S]` float32 24 kHz (called lazily, once).
        voice: name -> TTS (speech.voices.get_voice).
        rewriter: the LLM rewriter, or None.
    """

    conversation: Conversation
    cfg: PairsConfig
    model_audio: Callable[[], np.ndarray]
    voice: Callable[[str], Any]
    rewriter: Rewriter | None = None

    @cached_property
    def model_wav(self) -> np.ndarray:
        """The logged model channel `[S]` float32 at 24 kHz."""
        return np.asarray(self.model_audio(), dtype=np.float32)

    @cached_property
    def user_turns(self) -> list[Segment]:
        """The user's turns (segments split at `cfg.turn_gap`)."""
        return to_segments(self.conversation.words.user, "user", self.cfg.turn_gap)

    def dialogue_before(self, t: float) -> list[tuple[str, str]]:
        """(speaker, text) turns of both channels that start before `t`, in time order."""
        segs: list[Segment] = [
            *to_segments([w for w in self.conversation.words.model if w.start < t], "model",
                         self.cfg.turn_gap),
            *to_segments([w for w in self.conversation.words.user if w.start < t], "user",
                         self.cfg.turn_gap)]
        return [(s.channel, s.text) for s in sorted(segs, key=lambda s: s.start)]


Strategy = Callable[[Candidate, PairEnv], Built]

STRATEGIES: Registry[Strategy] = Registry(
    "pair strategy",
    modules=("duplexalign.pairs.rewrite", "duplexalign.pairs.retime", "duplexalign.pairs.insert",
             "duplexalign.pairs.voice"),
)


def speak(env: PairEnv, voice: str, text: str, start: float) -> Clip:
    """Synthesise `text` with `voice` and place it at `start` (conversation seconds)."""
    from duplexalign.speech.audio import resample

    sp = env.voice(voice).synthesize(text)
    wav = resample(np.asarray(sp.wav, dtype=np.float32), sp.sample_rate, SAMPLE_RATE)
    words = [Word(text=w.text, start=start + w.start, end=start + w.end) for w in sp.words]
    return Clip(start=start, wav=wav, words=words)


def natural_gap(cfg: PairsConfig, key: str) -> float:
    """A gap in [gap_min, gap_max] drawn deterministically from `key` and the seed."""
    h = int(hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return cfg.gap_min + (cfg.gap_max - cfg.gap_min) * h


def problems_of(issues: Sequence[Issue]) -> list[str]:
    """Problem categories handed to the rewriter (unique, in order)."""
    return list(dict.fromkeys(i.category for i in issues))


