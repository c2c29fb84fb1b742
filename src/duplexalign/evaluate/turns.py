"""Turn-taking metrics computed from both channels' timed words (eval.md section 3.6).

Owns the event definitions (IPUs, user pauses, user turn ends, model turns, user barge-ins) and the
per-conversation counts behind the timing task: takeovers in user pauses and at user turn ends,
response latency, no-response, model interruptions, and yield / stop latency when the user barges in,
following Full-Duplex-Bench v1/v1.5 rules where they apply (a model "turn" is anything but an empty
window or a < 1 s, <= 3-word backchannel; FDB-style merge gaps of 0.6 s for the user and 0.5 s for
the model). Segments (IPUs), backchannels and interrupting onsets are the shared definitions of
`segments.py`, and "is a turn" is FDB's take-over rule `fdb_rules.takeover`; this module only
applies them with the thresholds of `TimingRules`. Pure functions on `Word` lists;
every threshold lives in `TimingRules` and is recorded with the results. Knows nothing about audio,
frames or models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from duplexalign.fdb_rules import takeover
from duplexalign.records import Channel, Segment, Word
from duplexalign.segments import onset_interrupts, to_segments


class TimingRules(BaseModel):
    """Thresholds of the timing metrics, all in seconds (recorded with every result).

    Attributes:
        user_merge_gap: user words closer than this form one IPU (FDB v1.5: 0.6).
        model_merge_gap: model words closer than this form one IPU (FDB v1.5: 0.5).
        min_pause: a user silence shorter than this is not a pause.
        turn_end_silence: a user IPU followed by at least this much user silence ends a turn
            (used only when an item does not annotate its turn ends).
        response_window: a model turn starting within this time after a user turn end is a takeover.
        silence_window: no model word within this time after a user turn end is a no-response.
        backchannel_max_span: a model window shorter than this, with at most
            `backchannel_max_words` words, is a backchannel, not a turn.
        backchannel_max_words: see `backchannel_max_span`.
        yield_window: after a user barge-in the model must stop within this time to have yielded.
        onset_tolerance: a model turn starting inside a user IPU is an interruption only if it
            starts at least this long before that IPU ends (overlapping the user's last syllable
            is a fast turn switch, not an interruption).
    """

    model_config = ConfigDict(extra="forbid")

    user_merge_gap: float = Field(0.6, ge=0)
    model_merge_gap: float = Field(0.5, ge=0)
    min_pause: float = Field(0.3, ge=0)
    turn_end_silence: float = Field(1.0, gt=0)
    response_window: float = Field(3.0, gt=0)
    silence_window: float = Field(3.0, gt=0)
    backchannel_max_span: float = Field(1.0, ge=0)
    backchannel_max_words: int = Field(3, ge=0)
    yield_window: float = Field(2.0, gt=0)
    onset_tolerance: float = Field(0.2, ge=0)


@dataclass
class TimingEvents:
    """Per-conversation event counts and measurements (the unit of the bootstrap).

    Attributes:
        pauses / pause_takeovers: user pauses, and those in which a model turn started.
        turn_ends / turn_end_takeovers: user turn ends, and those followed by a model turn within
            `response_window`.
        latencies: model start minus user turn end for each takeover (seconds, >= 0).
        no_responses: turn ends with no model word within `silence_window`.
        model_turns / interruptions: model IPUs that are turns, and those that start while the user
            is still speaking.
        barge_ins / yields / stop_latencies: user IPUs starting while the model speaks, those where the
            model stopped within `yield_window`, and how long the model kept talking (seconds).
        duration: seconds covered by the conversation.
    """

    pauses: int = 0
    pause_takeovers: int = 0
    turn_ends: int = 0
    turn_end_takeovers: int = 0
    latencies: list[float] = field(default_factory=list)
    no_responses: int = 0
    model_turns: int = 0
    interruptions: int = 0
    barge_ins: int = 0
    yields: int = 0
    stop_latencies: list[float] = field(default_factory=list)
    duration: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return dict(self.__dict__)


def ipus(words: Sequence[Word], merge_gap: float, channel: Channel = "user") -> list[Segment]:
    """Inter-pausal units: `words` (any order) as segments split where the gap exceeds
    `merge_gap` (`segments.to_segments`)."""
    return to_segments(sorted(words, key=lambda w: w.start), channel, merge_gap)


def is_turn(words: Sequence[Word], rules: TimingRules) -> bool:
    """FDB's take-over rule (`fdb_rules.takeover`) on the time-sorted `words`: a turn unless empty
    or a short backchannel (< `backchannel_max_span` s, <= `backchannel_max_words` words)."""
    return takeover(sorted(words, key=lambda w: w.start), rules.backchannel_max_words,
                    rules.backchannel_max_span) == 1


def words_in(words: Sequence[Word], start: float, end: float) -> list[Word]:
    """Words whose start lies in [start, end)."""
    return [w for w in words if start <= w.start < end]


def infer_user_events(user: Sequence[Word], duration: float, rules: TimingRules
                      ) -> tuple[list[tuple[float, float]], list[float]]:
    """Pauses (start, end) and turn ends (times) of the user channel when none are annotated.

    A silence between two user IPUs is a turn end if it lasts at least `turn_end_silence`, else a pause
    if it lasts at least `min_pause`; the last user IPU ends a turn if it is followed by at least
    `turn_end_silence` before `duration` (or by the end of the clip when it is shorter).
    """
    units = ipus(user, rules.user_merge_gap)
    pauses: list[tuple[float, float]] = []
    ends: list[float] = []
    for a, b in zip(units, units[1:], strict=False):
        gap = b.start - a.end
        if gap >= rules.turn_end_silence:
            ends.append(a.end)
        elif gap >= rules.min_pause:
            pauses.append((a.end, b.start))
    if units:
        ends.append(units[-1].end)
    return pauses, ends


def timing_events(user: Sequence[Word], model: Sequence[Word], duration: float,
                  rules: TimingRules | None = None,
                  pauses: Sequence[tuple[float, float]] | None = None,
                  turn_ends: Sequence[float] | None = None) -> TimingEvents:
    """Count the timing events of one two-channel conversation.

    Args:
        user: the user's timed words (seconds).
        model: the model's timed words (seconds).
        duration: length of the conversation in seconds.
        rules: thresholds (defaults when None).
        pauses: annotated user pauses (start, end); inferred from `user` when None.
        turn_ends: annotated user turn-end times; inferred from `user` when None. A turn end closer
            than `silence_window` to `duration` is dropped (the clip cannot show a response).

    Returns:
        The conversation's `TimingEvents`.
    """
    rules = rules or TimingRules()
    if pauses is None or turn_ends is None:
        inf_pauses, inf_ends = infer_user_events(user, duration, rules)
        pauses = inf_pauses if pauses is None else pauses
        turn_ends = inf_ends if turn_ends is None else turn_ends
    ev = TimingEvents(duration=duration)
    model = sorted(model, key=lambda w: w.start)

    for ps, pe in pauses:
        ev.pauses += 1
        if is_turn(words_in(model, ps, pe), rules):
            ev.pause_takeovers += 1

    for t in turn_ends:
        if t + rules.silence_window > duration + 1e-9:
            continue
        ev.turn_ends += 1
        after = words_in(model, t, t + rules.response_window)
        if after and is_turn(words_in(model, after[0].start, after[0].start + rules.response_window),
                             rules):
            ev.turn_end_takeovers += 1
            ev.latencies.append(max(0.0, after[0].start - t))
        if not words_in(model, t, t + rules.silence_window):
            ev.no_responses += 1

    user_units = ipus(user, rules.user_merge_gap)
    model_units = ipus(model, rules.model_merge_gap, "model")
    for m in model_units:
        if not is_turn(m.words, rules):
            continue
        ev.model_turns += 1
        if any(onset_interrupts(m.start, u.start, u.end, rules.onset_tolerance)
               for u in user_units):
            ev.interruptions += 1

    for u in user_units:
        if not is_turn(u.words, rules):
            continue  # a user backchannel is not a barge-in
        talking = [m for m in model_units if m.start < u.start < m.end]
        if not talking:
            continue
        ev.barge_ins += 1
        stop = talking[0].end - u.start
        ev.stop_latencies.append(stop)
        if stop <= rules.yield_window:
            ev.yields += 1
    return ev
