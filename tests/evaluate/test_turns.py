"""Timing metrics on hand-built two-channel timelines whose answers are known."""

from __future__ import annotations

import pytest
from evalhelpers import words

from duplexalign.evaluate.turns import TimingRules, ipus, is_turn, timing_events

R = TimingRules()


def test_ipus_merge_by_gap():
    w = words("a b", 0.0) + words("c", 2.0)  # a 0-0.25, b 0.3-0.55, c 2.0-2.25
    units = ipus(w, 0.6)
    assert [(u.start, u.end, len(u.words)) for u in units] == [(0.0, 0.55, 2), (2.0, 2.25, 1)]


def test_is_turn_fdb_rule():
    assert not is_turn([], R)
    assert not is_turn(words("yeah right", 1.0), R)  # 0.55 s, 2 words: backchannel
    assert is_turn(words("one two three four", 1.0), R)  # 4 words
    assert is_turn(words("well", 1.0, step=0.0) + words("ok", 2.0), R)  # spans > 1 s


def test_turn_end_takeover_latency_and_no_response():
    user = words("what is the capital of france", 0.5)  # ends at 0.5 + 5*0.3 + 0.25 = 2.25
    model = words("paris is the capital", 3.05)  # starts 0.8 s after the user's end
    ev = timing_events(user, model, duration=10.0, rules=R)
    assert ev.turn_ends == 1 and ev.turn_end_takeovers == 1
    assert ev.latencies == [pytest.approx(0.8)]
    assert ev.no_responses == 0 and ev.interruptions == 0 and ev.model_turns == 1

    silent = timing_events(user, [], duration=10.0, rules=R)
    assert silent.turn_end_takeovers == 0 and silent.no_responses == 1 and silent.latencies == []

    late = timing_events(user, words("paris is the capital", 6.0), duration=10.0, rules=R)
    assert late.no_responses == 1 and late.turn_end_takeovers == 0  # 3.75 s > both windows


def test_turn_end_too_close_to_clip_end_is_not_counted():
    user = words("hello there", 0.0)  # ends 0.55
    ev = timing_events(user, [], duration=2.0, rules=R)
    assert ev.turn_ends == 0 and ev.no_responses == 0


def test_pause_takeover_with_annotated_pause():
    user = words("what is the", 0.5) + words("capital of france", 3.0)  # pause 1.15 .. 3.0
    pause = [(1.15, 3.0)]
    taken = timing_events(user, words("i think that you", 1.6), 10.0, R, pauses=pause,
                          turn_ends=[3.85])
    assert (taken.pauses, taken.pause_takeovers) == (1, 1)
    # the model started in the user's silence (not an interruption) and ended at 2.75 s, before
    # the user resumed at 3.0 s (not a barge-in)
    assert taken.interruptions == 0 and taken.barge_ins == 0

    bc = timing_events(user, words("mhm", 1.6), 10.0, R, pauses=pause, turn_ends=[3.85])
    assert (bc.pauses, bc.pause_takeovers) == (1, 0)  # a backchannel is not a takeover


def test_inferred_events_when_not_annotated():
    user = words("what is the", 0.5) + words("capital of france", 2.0)  # gap 1.15 -> 2.0 = 0.85
    ev = timing_events(user, [], 10.0, R)
    assert ev.pauses == 1 and ev.turn_ends == 1  # 0.85 s < 1 s turn-end silence: a pause


def test_model_interruption_is_counted_once_per_model_turn():
    user = words("tell me about the history of rome please", 0.0)  # 0.0 .. 2.35
    model = words("rome was founded in", 0.9)  # starts while the user is talking
    ev = timing_events(user, model, 10.0, R, pauses=[], turn_ends=[2.35])
    assert ev.model_turns == 1 and ev.interruptions == 1


def test_barge_in_yield_and_stop_latency():
    user = words("what is rome", 0.0) + words("wait stop please now", 3.0)
    # the model answers from 1.5 s and keeps talking until 3.0 + 0.8 (yields within 2 s)
    model = [w for w in words("rome is a city in italy and the capital", 1.5) if w.start < 3.6]
    ev = timing_events(user, model, 10.0, R, pauses=[], turn_ends=[0.85, 3.0 + 0.9 + 0.25])
    assert ev.barge_ins == 1 and ev.yields == 1
    assert ev.stop_latencies == [pytest.approx(model[-1].end - 3.0)]

    stubborn = words("rome is a city in italy and the capital of the country", 1.5)  # to 5.15
    ev2 = timing_events(user, stubborn, 10.0, R, pauses=[], turn_ends=[0.85])
    assert ev2.barge_ins == 1 and ev2.yields == 0
    assert ev2.stop_latencies == [pytest.approx(stubborn[-1].end - 3.0)]
