"""Timing rules on hand-built two-channel timelines with known answers."""

from __future__ import annotations

import pytest
from factories import conversation, spread

from duplexalign.judges.base import RULES, run_rules
from duplexalign.judges.rules import (
    TimingRulesConfig,
    detect_interruptions,
    detect_no_yield,
    detect_pause_takeover,
    detect_unresponsiveness,
)
from duplexalign.records import Conversation, Word
from duplexalign.segments import to_segments

W = spread


def conv(user: list[Word], model: list[Word], duration: float = 20.0) -> Conversation:
    return conversation(model, user, duration)


def test_registry_lists_all_four_rules_and_defaults_are_the_papers_two():
    assert RULES.names() == ["interruption", "no_yield", "pause_takeover", "unresponsiveness"]
    assert TimingRulesConfig().enabled == ["interruption", "unresponsiveness"]


def test_model_cutting_into_user_turn_is_an_interruption():
    # user talks 0-3 s; model starts at 1.5 s and talks to 3.5 s:
    # overlap = 3.0 - 1.5 = 1.5 s >= 0.5, user continues 3.0 - 1.5 = 1.5 s >= 1.0
    c = conv(W("so I was wondering whether you could tell me", 0, 3),
             W("the answer is forty two", 1.5, 3.5))
    [iss] = detect_interruptions(c)
    assert iss.kind == "timing" and iss.category == "interruption"
    assert iss.reply_span == (1.5, 3.5)
    assert iss.evidence["overlap"] == pytest.approx(1.5)
    assert iss.evidence["user_continues_for"] == pytest.approx(1.5)
    assert iss.judge.name == "rule:interruption" and "1.5s" in iss.reason


def test_onset_in_a_mid_turn_pause_is_judged_per_turn():
    # paper.md section 7: the user says "so i was thinking about" (0-1.6 s), pauses 0.83 s
    # (< turn_end_silence 1.0 s, but > the 0.8 s segment gap: two segments, one turn), then
    # "my trip to rome next month" (2.43-4.43 s). The model starts in the pause at 1.9 s and talks
    # to 4.03 s: it overlaps 4.03 - 2.43 = 1.6 s of the continuation (>= 0.5), and the user keeps
    # talking 4.43 - 1.9 = 2.53 s after the onset (>= 1.0): an interruption of the turn.
    user = W("so i was thinking about", 0.0, 1.6) + W("my trip to rome next month", 2.43, 4.43)
    c = conv(user, W("that sounds great where are you going", 1.9, 4.03))
    [iss] = detect_interruptions(c)
    assert iss.reply_id == "c#r0" and iss.reply_words == (0, 7)
    assert iss.user_turn == (0.0, 4.43) and iss.evidence["user_span"] == [0.0, 4.43]
    assert iss.evidence["overlap"] == pytest.approx(1.6)
    assert iss.evidence["user_continues_for"] == pytest.approx(2.53)
    # per segment (the old definition) the onset at 1.9 s is in no user segment
    assert all(not (s.start < 1.9 < s.end) for s in to_segments(user, "user", 0.8))


def test_onset_after_a_turn_end_silence_is_not_an_interruption():
    # the same words with a 1.2 s pause (>= turn_end_silence): two turns, the model answered
    # the first in the gap, and overlaps the second by only 0.2 s
    user = W("so i was thinking about", 0.0, 1.6) + W("my trip to rome next month", 2.8, 4.8)
    c = conv(user, W("that sounds great", 1.9, 3.0))
    assert detect_interruptions(c) == []


@pytest.mark.parametrize("model", [
    W("yeah", 1.5, 1.8),                       # backchannel: one word, 0.3 s
    W("mm-hmm right okay yeah", 1.0, 2.5),     # only backchannel words, 1.5 s long
    W("the answer is forty two", 2.8, 4.5),    # overlap 0.2 s < 0.5 s
])
def test_backchannels_and_small_overlaps_are_not_interruptions(model):
    c = conv(W("so I was wondering whether you could tell me", 0, 3), model)
    assert detect_interruptions(c) == []


def test_user_stopping_right_after_onset_is_not_an_interruption():
    # model starts at 2.2, user ends at 3.0: overlap 0.8 s but the user continues only 0.8 s < 1.0
    c = conv(W("so I was wondering whether you could tell me", 0, 3),
             W("the answer is forty two", 2.2, 4.0))
    assert detect_interruptions(c) == []


def test_vad_speech_that_asr_missed_still_holds_the_floor():
    # ASR kept only "hello" (0-0.5 s) but the user's VAD says speech until 4 s
    c = conv(W("hello", 0, 0.5), W("the answer is forty two", 2.0, 3.5))
    assert detect_interruptions(c) == []
    [iss] = detect_interruptions(c, vad={"user": [(0.0, 4.0)]})
    assert iss.evidence["user_span"] == [0.0, 4.0]  # overlap 1.5 s, user continues 2.0 s


def test_long_silence_after_user_turn_is_unresponsiveness_until_the_model_speaks():
    # user ends at 2.0; model answers at 6.0: silence 4.0 s >= 3.0
    c = conv(W("what is the capital of france", 0, 2), W("paris", 6.0, 6.5))
    [iss] = detect_unresponsiveness(c)
    assert iss.reply_span == (2.0, 6.0)
    assert iss.evidence["silence"] == pytest.approx(4.0)
    assert iss.evidence["next_model_onset"] == 6.0


@pytest.mark.parametrize("user,model,duration", [
    (W("what is the capital of france", 0, 2), W("paris is the capital", 3.0, 4.0), 20.0),
    # user resumes after 1.5 s: silence 2.0 -> 3.5 is only 1.5 s
    (W("what is the capital of france", 0, 2) + W("hello are you there", 3.5, 5.0),
     W("paris", 5.5, 6.0), 20.0),
    # the log ends 2 s after the user: too short to call
    (W("what is the capital of france", 0, 2), [], 4.0),
    # user backchannel while nobody else talks
    (W("okay", 0, 0.4), [], 20.0),
])
def test_prompt_replies_and_short_gaps_are_not_unresponsive(user, model, duration):
    assert detect_unresponsiveness(conv(user, model, duration)) == []


def test_silence_to_the_end_of_the_log_counts():
    c = conv(W("what is the capital of france", 0, 2), [], duration=10.0)
    [iss] = detect_unresponsiveness(c)
    assert iss.reply_span == (2.0, 10.0)
    assert "never spoke again" in iss.reason


def test_user_giving_up_and_speaking_again_is_unresponsiveness_up_to_the_user():
    c = conv(W("what is the capital of france", 0, 2) + W("hello", 6.0, 6.4), [], duration=8.0)
    [iss] = detect_unresponsiveness(c)
    assert iss.reply_span == (2.0, 6.0) and "user spoke again first" in iss.reason


def test_model_talking_over_a_barge_in_is_no_yield():
    # model talks 0-6 s; user barges in at 2.0 s; model keeps talking 6.0 - 2.0 = 4.0 s > 2.0
    c = conv(W("wait stop please listen to me", 2.0, 3.5),
             W("and then the next thing you should know is that the rules say", 0, 6))
    [iss] = detect_no_yield(c)
    assert iss.category == "no_yield" and iss.reply_span == (0.0, 6.0)
    assert iss.evidence["kept_talking"] == pytest.approx(4.0)


@pytest.mark.parametrize("model_end,user", [
    (3.0, W("wait stop please listen to me", 2.0, 3.5)),  # stops 1.0 s after the barge-in
    (6.0, W("mm-hmm", 2.0, 2.4)),                          # user backchannel is not a barge-in
])
def test_yielding_or_backchannels_are_not_no_yield(model_end, user):
    c = conv(user, W("and then the next thing you should know is that", 0, model_end))
    assert detect_no_yield(c) == []


def test_model_taking_a_mid_turn_pause_is_pause_takeover():
    # user: 0-1.0, pause 1.0-1.6 (0.6 s, in [0.3, 1.0)), resumes 1.6-3.0; model starts at 1.2
    user = W("I want to", 0, 1.0) + W("book a table for two", 1.6, 3.0)
    c = conv(user, W("sure which restaurant", 1.2, 2.4))
    [iss] = detect_pause_takeover(c)
    assert iss.pause == (1.0, 1.6) and iss.evidence["pause"] == [1.0, 1.6]
    assert iss.reply_span == (1.2, 2.4)


def test_model_speaking_after_turn_end_is_not_pause_takeover():
    user = W("I want to", 0, 1.0) + W("book a table for two", 1.6, 3.0)
    c = conv(user, W("sure which restaurant", 3.4, 4.4))
    assert detect_pause_takeover(c) == []


def test_run_rules_applies_the_enabled_rules_only():
    c = conv(W("so I was wondering whether you could tell me", 0, 3),
             W("the answer is forty two and so on and so on", 1.5, 7.0))
    cats = [i.category for i in run_rules(c, ["interruption", "unresponsiveness"],
                                          TimingRulesConfig())]
    assert cats == ["interruption"]
    ids = [i.id for i in run_rules(c, RULES.names(), TimingRulesConfig())]
    assert len(ids) == len(set(ids))
