"""Turn-taking: segmentation, reply identity and cross-channel geometry over timed words.

Owns the one definition of each turn-taking concept that the timing rules (`judges/rules.py`), the
evaluation metrics (`evaluate/turns.py`), the sandbox's ground-truth outcomes
(`sandbox/outcomes.py`) and the report share: how words become segments (a model segment is a
*reply*; a user segment is a turn part), how segments separated by less than a turn-end silence form
one *turn*, what a backchannel is, when a model onset interrupts a turn, the reply ids (`replies`
assigns each model reply its `reply_id` once, under one gap), and the questions later stages ask
about two channels: gaps, overlaps, and who holds the floor at a time. Thresholds are arguments
(each caller's config documents its values). These functions read records only; they know nothing
about audio, frames or judges.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from duplexalign.records import Channel, Conversation, Segment, Word
from duplexalign.text import normalize

Floor = Literal["none", "model", "user", "both"]

DEFAULT_MAX_GAP = 0.8
"""Seconds of silence that split a channel's words into two segments (about a short pause)."""


def to_segments(words: Sequence[Word], channel: Channel, max_gap: float = DEFAULT_MAX_GAP
                ) -> list[Segment]:
    """Group time-sorted `words` into segments split where the gap exceeds `max_gap` seconds."""
    out: list[Segment] = []
    cur: list[Word] = []
    end = 0.0
    first = 0
    for i, w in enumerate(words):
        if cur and w.start - end > max_gap:
            out.append(_seg(channel, cur, end, first))
            cur = []
        if not cur:
            first = i
        end = max(end, w.end) if cur else w.end
        cur.append(w)
    if cur:
        out.append(_seg(channel, cur, end, first))
    return out


def _seg(channel: Channel, words: list[Word], end: float, first: int) -> Segment:
    return Segment(channel=channel, start=words[0].start, end=end, words=words, first_word=first)


def conversation_segments(conv: Conversation, max_gap: float = DEFAULT_MAX_GAP
                          ) -> dict[Channel, list[Segment]]:
    """Segments of both channels of `conv`."""
    return {ch: to_segments(conv.words.of(ch), ch, max_gap) for ch in ("model", "user")}


def reply_id(conversation_id: str, index: int) -> str:
    """The id of the `index`-th (0-based) model reply of a conversation."""
    return f"{conversation_id}#r{index}"


def silence_id(conversation_id: str, start: float) -> str:
    """The id of a missing reply: the silence that starts at `start` seconds (millisecond onset)."""
    return f"{conversation_id}#silence{round(start * 1000)}"


def words_before(words: Sequence[Word], t: float) -> int:
    """How many of the time-sorted `words` start before `t` (where a reply at `t` would go)."""
    return sum(1 for w in words if w.start < t)


def replies(conv: Conversation, max_gap: float = DEFAULT_MAX_GAP) -> list[Segment]:
    """The model's replies (model-channel segments) of `conv`, each with its `reply_id` as `id`.

    This is where a reply gets its identity: the annotate stage calls it once per conversation with
    its configured `reply_gap` and hands the same list to the timing rules and the content judge.
    """
    return [s.model_copy(update={"id": reply_id(conv.id, i)})
            for i, s in enumerate(to_segments(conv.words.model, "model", max_gap))]


def turns(segments: Sequence[Segment], turn_end_silence: float) -> list[list[Segment]]:
    """Group one channel's time-sorted `segments` into turns: a silence of at least
    `turn_end_silence` seconds between two segments ends a turn; shorter gaps are mid-turn
    pauses."""
    out: list[list[Segment]] = []
    for s in segments:
        if out and s.start - out[-1][-1].end < turn_end_silence:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def is_backchannel(words: Sequence[Word], start: float, end: float, max_words: int,
                   max_duration: float, lexicon: Collection[str] = ()) -> bool:
    """True when the speech [start, end) holding `words` is a backchannel, not a turn.

    Short token rule (Full-Duplex-Bench): at most `max_words` words and shorter than `max_duration`
    seconds (speech without words: by length only). Lexicon rule: every word, normalised, is in
    `lexicon` (normalised the same way), whatever its length ("yeah yeah right").
    """
    if not words:
        return end - start < max_duration
    if len(words) <= max_words and end - start < max_duration:
        return True
    if not lexicon:
        return False
    lex = {normalize(w) for w in lexicon}
    return all(normalize(w.text) in lex for w in words)


def onset_interrupts(onset: float, start: float, end: float, tolerance: float = 0.0) -> bool:
    """True when a model onset at `onset` falls inside the user speech [start, end) at least
    `tolerance` seconds before its end (overlapping the last syllable is a fast turn switch)."""
    return start <= onset < end - tolerance


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds shared by intervals `a` and `b` (0 if disjoint)."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def speaking_at(segments: Sequence[Segment], t: float) -> bool:
    """True when one of `segments` covers time `t` (start inclusive, end exclusive)."""
    return any(s.start <= t < s.end for s in segments)


def floor_at(model: Sequence[Segment], user: Sequence[Segment], t: float) -> Floor:
    """Who holds the floor at time `t`: "none", "model", "user" or "both"."""
    m, u = speaking_at(model, t), speaking_at(user, t)
    return "both" if m and u else "model" if m else "user" if u else "none"


def floor_timeline(model: Sequence[Segment], user: Sequence[Segment], duration: float
                   ) -> list[tuple[float, float, Floor]]:
    """Partition [0, duration) into maximal intervals with a constant floor holder."""
    edges = {0.0, duration}
    for s in (*model, *user):
        edges.update((min(max(s.start, 0.0), duration), min(max(s.end, 0.0), duration)))
    pts = sorted(edges)
    out: list[tuple[float, float, Floor]] = []
    for a, b in zip(pts, pts[1:], strict=False):
        if b <= a:
            continue
        f = floor_at(model, user, (a + b) / 2)
        if out and out[-1][2] == f:
            out[-1] = (out[-1][0], b, f)
        else:
            out.append((a, b, f))
    return out


def last_before(segments: Sequence[Segment], t: float) -> Segment | None:
    """The last segment that starts before `t`, or None."""
    prev = [s for s in segments if s.start < t]
    return prev[-1] if prev else None


def next_after(segments: Sequence[Segment], t: float) -> Segment | None:
    """The first segment that starts at or after `t`, or None."""
    for s in segments:
        if s.start >= t:
            return s
    return None


def gap_before(segment: Segment, others: Sequence[Segment]) -> float | None:
    """Seconds from the end of the other channel's last segment that started before `segment`
    to `segment.start` (negative when they overlap); None when no such segment exists."""
    prev = last_before(others, segment.start)
    return None if prev is None else segment.start - prev.end


def reply_target(conv: Conversation, t: float) -> tuple[str, tuple[int, int]]:
    """The `reply_id` and model word range an issue at `t` seconds is about: the reply running at
    `t` (1 ms of slack before its start), else the silence at `t` (an empty range where a reply
    would go)."""
    rep = next((r for r in replies(conv) if r.start - 1e-3 <= t < r.end), None)
    if rep is not None:
        return rep.id, rep.word_range
    k = words_before(conv.words.model, t)
    return silence_id(conv.id, t), (k, k)
