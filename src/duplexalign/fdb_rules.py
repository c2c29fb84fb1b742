"""Full-Duplex-Bench scoring rules (v1 turn-taking, v1.5 overlap timing), defined once.

Owns the arithmetic of Full-Duplex-Bench (FDB, Lin et al. 2025) re-derived from its evaluation
scripts, quirks included, so our numbers can sit next to the published table: the take-over rule
(TOR) and response latency of pause handling, smooth turn-taking and user interruption; the
backchannel scan of the model's VAD segments (TOR, backchannel frequency, 0.2 s coverage histogram
and its Jensen-Shannon distance to the human one); and the v1.5 overlap timing (merged VAD segments,
stop-latency overlaps, response gaps). Inputs are timed word chunks (`Chunk`, or any object with
`start`/`end` such as `records.Word`) and speech intervals in seconds; the short-token turn rule is
`segments.is_backchannel`, the one definition that the `timing` task and the annotate rules share.
Pure functions: no audio, VAD, ASR or files here (`evaluate/fdb/` applies them to a folder).

Quirks of FDB's code that we follow on purpose (each marked `FDB quirk` below):
- TOR's span runs from the first chunk's start to the *last chunk's* end (its start when the end is
  null), not to the latest end.
- Backchannel scan: the loop stops at the first VAD segment longer than 3 s (TOR = 1); every shorter
  segment seen before it is counted as a backchannel for frequency and JSD, whatever its words (the
  words only decide TOR); TOR is the verdict of the last segment scanned (0 when there is none).
- The backchannel VAD reads the samples as 16 kHz whatever the file's rate and rounds times to
  0.1 s (silero's `return_seconds`); the clip length for frequency uses the real rate.
- "JSD" is scipy's `jensenshannon`: the Jensen-Shannon *distance* (square root, natural log); a clip
  without backchannel scores 1; the human histogram is linearly interpolated to the model's number
  of bins and not renormalised (scipy normalises both).
- Latency is clipped at 0 and only counted for samples with TOR = 1.
- v1.5 overlaps keep, per millisecond-rounded end, the shortest overlap; response gaps keep, per
  model start, the latest user end; both are rounded to 1 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from duplexalign.errors import BadInput
from duplexalign.segments import is_backchannel

TURN_MAX_SPAN = 1.0
"""A reply shorter than this (seconds) with at most `TURN_MAX_WORDS` words is no take-over."""
TURN_MAX_WORDS = 3
BC_TURN_SPAN = 3.0
"""Backchannel scan: a VAD segment longer than this is a turn (the scan stops there)."""
BC_TURN_WORDS = 3
"""Backchannel scan: a shorter segment with more words than this is a turn."""
BC_MAX_SPAN = 1.0
BC_MAX_WORDS = 2
"""Backchannel scan: a segment shorter than `BC_MAX_SPAN` with at most this many words is no turn."""
BIN = 0.2
"""Seconds per bin of the backchannel coverage histogram."""
EPSILON = 1e-10
"""Added to every histogram bin before normalising."""
VAD_RATE = 16_000
"""The rate FDB's VAD assumes (backchannel) or resamples to (v1.5 timing)."""
USER_MERGE_GAP = 0.6
"""v1.5: user VAD segments separated by at most this many seconds are merged."""
MODEL_MERGE_GAP = 0.5
"""v1.5: model VAD segments separated by at most this many seconds are merged."""

Interval = tuple[float, float]


class Timed(Protocol):
    """Anything with a start and an (optional) end in seconds."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float | None: ...


@dataclass(frozen=True)
class Chunk:
    """One word of an FDB transcript (`{"text", "timestamp": [start, end]}`); `end` may be null."""

    text: str
    start: float
    end: float | None


def parse_chunks(doc: Any, what: str) -> list[Chunk]:
    """The chunks of an FDB transcript document (`{"text", "chunks": [{"text", "timestamp":
    [start, end]}]}`: `output.json`, `input.json`, ...); a null end is kept as null.

    Raises:
        BadInput: "bad_schema" naming the first malformed chunk.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("chunks"), list):
        raise BadInput("bad_schema", f'{what} needs a "chunks" list')
    def num(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    out = []
    for i, c in enumerate(doc["chunks"]):
        ts = c.get("timestamp") if isinstance(c, dict) else None
        ok = isinstance(ts, list) and len(ts) == 2 and num(ts[0]) and (ts[1] is None or num(ts[1]))
        if not ok or not isinstance(c.get("text", ""), str):
            raise BadInput("bad_schema", f'{what} chunk {i} needs "text" and "timestamp": '
                           "[start, end] (numbers; the end may be null)")
        out.append(Chunk(c.get("text", "").strip(), float(ts[0]),
                         None if ts[1] is None else float(ts[1])))
    return out


def _end(c: Timed) -> float:
    return c.start if c.end is None else c.end


def takeover(chunks: Sequence[Timed], max_words: int = TURN_MAX_WORDS,
             max_span: float = TURN_MAX_SPAN) -> int:
    """FDB's take-over (TOR) of one reply (time-ordered chunks): 1 when the model took the turn.

    0 without words; otherwise D = end of the last chunk (its start when the end is null) minus the
    start of the first, and TOR = 0 iff D < `max_span` (1 s) and there are at most `max_words` (3)
    chunks (FDB quirk: the last chunk, not the latest end). The `timing` task passes its own
    thresholds (`TimingRules`), FDB's by default.
    """
    if not chunks:
        return 0
    short = is_backchannel(chunks, chunks[0].start, _end(chunks[-1]),  # type: ignore[arg-type]
                           max_words, max_span)
    return 0 if short else 1


def latency(chunks: Sequence[Timed], user_end: float) -> float | None:
    """Response latency: first chunk start minus `user_end`, clipped at 0; None when TOR = 0."""
    if not takeover(chunks):
        return None
    return max(0.0, chunks[0].start - user_end)


def segment_chunks(chunks: Sequence[Timed], start: float, end: float) -> list[Timed]:
    """The chunks FDB's backchannel scan assigns to the speech interval [start, end].

    A chunk counts when it lies inside, straddles `end` or straddles `start` (boundaries as FDB
    compares them). A null end: skipped when the chunk starts before `end`, else treated as a point.
    """
    out = []
    for c in chunks:
        s, e = c.start, c.end
        if e is None:
            if s < end:
                continue
            e = s
        if (s >= start and e <= end) or (s <= end and e > end) or (s <= start and e > start):
            out.append(c)
    return out


def segment_is_turn(num_words: int, duration: float) -> bool:
    """Backchannel scan verdict of one VAD segment (longer than 3 s: see `backchannel_scan`)."""
    if duration > BC_TURN_SPAN or num_words > BC_TURN_WORDS:
        return True
    return not (duration < BC_MAX_SPAN and num_words <= BC_MAX_WORDS)


@dataclass(frozen=True)
class BackchannelScan:
    """What FDB's backchannel scan finds in one clip.

    Attributes:
        tor: 1 when the model took the turn (see the module's quirks).
        backchannels: intervals counted as backchannels (seconds).
        strict: the subset whose words make them backchannels (< 1 s, <= 2 words): not used by FDB,
            kept so a reader can see how far the quirk moves the frequency.
    """

    tor: int
    backchannels: list[Interval]
    strict: list[Interval]


def backchannel_scan(segments: Sequence[Interval], chunks: Sequence[Timed]) -> BackchannelScan:
    """Scan the model's VAD `segments` (seconds, time-ordered) with its word `chunks`."""
    tor = 0
    found: list[Interval] = []
    strict: list[Interval] = []
    for s, e in segments:
        if e - s > BC_TURN_SPAN:
            tor = 1
            break
        tor = int(segment_is_turn(len(segment_chunks(chunks, s, e)), e - s))
        found.append((s, e))  # FDB quirk: counted whatever the verdict
        if not tor:
            strict.append((s, e))
    return BackchannelScan(tor=tor, backchannels=found, strict=strict)


def backchannel_frequency(backchannels: Sequence[Interval], clip_seconds: float) -> float:
    """Backchannels per second of the clip."""
    return len(backchannels) / clip_seconds


def coverage_histogram(backchannels: Sequence[Interval], clip_seconds: float) -> np.ndarray:
    """Normalised 0.2 s histogram [int(clip / 0.2) + 1] of backchannel coverage (+1e-10 per bin).

    Each interval adds 1 to every bin from int(start / 0.2) to int(end / 0.2), both included.
    """
    n = int(clip_seconds / BIN) + 1
    hist = np.zeros(n, dtype=np.float64)
    for s, e in backchannels:
        for i in range(int(s / BIN), int(e / BIN) + 1):
            if i < n:
                hist[i] += 1
    hist = hist + EPSILON
    return hist / hist.sum()


def backchannel_jsd(backchannels: Sequence[Interval], clip_seconds: float,
                    human: Sequence[float]) -> float:
    """FDB's "JSD": scipy's Jensen-Shannon distance between the model's coverage histogram and the
    human one (`human` [H], linearly interpolated to the model's bins); 1 without backchannels."""
    if not backchannels:
        return 1.0
    from scipy.spatial.distance import jensenshannon

    model = coverage_histogram(backchannels, clip_seconds)
    ref = np.interp(np.linspace(0, 1, len(model)), np.linspace(0, 1, len(human)),
                    np.asarray(human, dtype=np.float64))
    return float(jensenshannon(model, ref))


def merge_intervals(segments: Sequence[Interval], max_gap: float) -> list[Interval]:
    """Sorted `segments` merged where the gap to the previous one is at most `max_gap` seconds."""
    out: list[Interval] = []
    for s, e in sorted(segments):
        if out and s - out[-1][1] <= max_gap:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlaps(user: Sequence[Interval], model: Sequence[Interval]) -> list[Interval]:
    """v1.5 stop-latency intervals: user/model overlaps of two sorted interval lists.

    Two-pointer sweep (advance the user side when its interval ends first, else the model side);
    of overlaps sharing a millisecond-rounded end only the shortest is kept; sorted by end and
    rounded to 1 ms. The stop latency of an overlap is its length.
    """
    raw: list[Interval] = []
    i = j = 0
    while i < len(user) and j < len(model):
        s, e = max(user[i][0], model[j][0]), min(user[i][1], model[j][1])
        if e > s:
            raw.append((s, e))
        if user[i][1] < model[j][1]:
            i += 1
        else:
            j += 1
    best: dict[int, Interval] = {}
    for s, e in raw:
        key = int(round(e * 1000))
        if key not in best or e - s < best[key][1] - best[key][0]:
            best[key] = (s, e)
    return [(round(s, 3), round(e, 3)) for s, e in sorted(best.values(), key=lambda x: x[1])]


def response_gaps(user: Sequence[Interval], model: Sequence[Interval]) -> list[Interval]:
    """v1.5 response-latency intervals (user end, next model start strictly after it).

    Of user segments answered by the same model start (millisecond-rounded) only the latest user
    end is kept; sorted by model start, rounded to 1 ms. The latency is the interval's length.
    """
    starts = [s for s, _ in model]
    best: dict[int, Interval] = {}
    for _, ue in user:
        nxt = next((s for s in starts if s > ue), None)
        if nxt is None:
            continue
        key = int(round(nxt * 1000))
        cand = (round(ue, 3), round(nxt, 3))
        if key not in best or cand[0] > best[key][0]:
            best[key] = cand
    return sorted(best.values(), key=lambda x: x[1])


def mean_length(intervals: Sequence[Interval]) -> float | None:
    """Mean of `end - start` over `intervals` (None when empty)."""
    return sum(e - s for s, e in intervals) / len(intervals) if intervals else None
