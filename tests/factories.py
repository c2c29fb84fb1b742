"""The one factory of test words and conversations (import as `from factories import ...`).

Owns how tests spell timed words (spread evenly over a span, or one every `step` seconds), a
minimal valid `Conversation` around them, and an `Issue` about one of its replies (with the reply id
and word range the annotate stage would give it), so that no test module hand-rolls its own builder.
Times are rounded to the millisecond, as readers store them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duplexalign.records import ChannelWords, Conversation, Issue, JudgeInfo, Source, Word
from duplexalign.segments import reply_target


def word(text: str, start: float, end: float | None = None) -> Word:
    """One word; `end` defaults to `start + 0.1`."""
    return Word(text=text, start=start, end=start + 0.1 if end is None else end)


def spread(text: str, start: float, end: float) -> list[Word]:
    """The words of `text` spread evenly over [start, end] (each ends where the next starts)."""
    toks = text.split()
    step = (end - start) / len(toks)
    return [Word(text=t, start=round(start + i * step, 3), end=round(start + (i + 1) * step, 3))
            for i, t in enumerate(toks)]


def timed(text: str, start: float, step: float = 0.3, dur: float = 0.25) -> list[Word]:
    """The words of `text`, one every `step` seconds from `start`, each lasting `dur` seconds."""
    return [Word(text=t, start=round(start + i * step, 3), end=round(start + i * step + dur, 3))
            for i, t in enumerate(text.split())]


def conversation(model: Sequence[Word] = (), user: Sequence[Word] = (), duration: float = 20.0,
                 id: str = "c", **fields: Any) -> Conversation:
    """A conversation with these words (other fields: a test source and empty meta by default)."""
    fields.setdefault("source", Source(reader="test", path="-", digest="0"))
    return Conversation(id=id, words=ChannelWords(model=list(model), user=list(user)),
                        duration=duration, **fields)


def issue(conv: Conversation, kind: str, category: str, span: tuple[float, float],
          **fields: Any) -> Issue:
    """An issue about the reply of `conv` running at `span[0]` (or, when no reply runs there,
    about the silence `span`), with its `reply_id` and word range as annotate assigns them."""
    rid, rng = reply_target(conv, span[0])
    fields.setdefault("id", f"{conv.id}:{category}:{span[0]}")
    fields.setdefault("reason", f"{category} problem")
    fields.setdefault("judge", JudgeInfo(name="test"))
    return Issue(conversation_id=conv.id, reply_id=rid, reply_words=rng, reply_span=span,
                 kind=kind, category=category, **fields)
