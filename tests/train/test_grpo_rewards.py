"""GRPO's reward terms on hand-built timelines (default timing thresholds: segment gap 0.8 s,
turn end 1 s, unresponsive after 3 s, interruption overlap >= 0.5 s with >= 1 s of user speech
left, pauses 0.3-1 s between units split at 0.2 s), with the expected values spelled out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import conversation, timed

from duplexalign.judges.rules import TimingRulesConfig
from duplexalign.sandbox.oracle import OracleJudge
from duplexalign.train.rewards import (
    RewardConfig,
    collapse_checks,
    flag_costs,
    judge_outcomes,
    repetition_rate,
    reward_terms,
    total_reward,
    turn_terms,
)

CFG = RewardConfig()


def judge_flags(judge, convs, category_weights=None):
    """The summed `flag_costs` of each conversation's judge outcome (None: a failed call)."""
    costs = [flag_costs(o, category_weights) for o in judge_outcomes(judge, convs)]
    return [None if c is None else sum(x for _, x in c) for c in costs]


def test_prompt_reply_scores_only_its_latency():
    # user: 6 words at 0.0, 0.3, ..., 1.5 (each 0.25 s) -> one turn [0, 1.75]
    # model: 4 words from 2.25 -> onset 0.5 s after the turn's end, no issue
    conv = conversation(model=timed("paris is the capital", 2.25),
                        user=timed("what is the capital of france", 0.0), duration=10.0)
    assert reward_terms(conv, CFG) == pytest.approx({
        "interruption": 0.0, "unresponsiveness": 0.0, "pause_takeover": 0.0, "no_yield": 0.0,
        "latency": -0.5 / 3.0,  # 0.5 s of the 3 s unresponsive threshold
        "repetition": 0.0})  # no judge: no content term


def test_cut_in_then_silence_is_an_interruption_and_unresponsive():
    # model "no no no no" at 0.5-1.65 inside the user turn [0, 1.75]: overlap 1.15 s >= 0.5,
    # user goes on 1.25 s >= 1 -> interruption; after 1.75 the model never speaks -> silence of
    # 8.25 s >= 3 (unresponsive) and the latency is the 3 s cap; 3-grams (no no no) x 2: 1 of 2
    # repeats an earlier one
    conv = conversation(model=timed("no no no no", 0.5),
                        user=timed("what is the capital of france", 0.0), duration=10.0)
    assert reward_terms(conv, CFG) == pytest.approx({
        "interruption": -1.0, "unresponsiveness": -1.0, "pause_takeover": 0.0, "no_yield": 0.0,
        "latency": -1.0, "repetition": -0.5})


def test_jump_in_at_an_um_pause_is_a_pause_takeover():
    # user "i want um" [0, 0.85], pause 0.75 s, "to know the time" [1.6, 2.75]: one turn (gap
    # < 1 s) made of two units; the model starts at 1.0 inside the pause (overlap 1.15 s, user goes
    # on 1.75 s: also an interruption), then answers again at 3.25 (0.5 s after the turn's end)
    model = timed("sure here it is", 1.0) + timed("it is noon now", 3.25)
    conv = conversation(model=model, user=timed("i want um", 0.0) + timed("to know the time", 1.6),
                        duration=10.0)
    assert reward_terms(conv, CFG) == pytest.approx({
        "interruption": -1.0, "unresponsiveness": 0.0, "pause_takeover": -1.0, "no_yield": 0.0,
        "latency": -0.5 / 3.0, "repetition": 0.0})


def test_latency_grace_makes_short_waits_free():
    # the two turns of the next test: waits 0.5 s and 3 s (the cap); with a 1 s grace the first
    # costs nothing and the second (3 - 1) / (3 - 1) = 1: mean (0 + 1) / 2
    user = timed("what is two plus two", 0.0) + timed("and what is three plus three", 4.0)
    conv = conversation(model=timed("four", 1.95), user=user, duration=12.0)
    graced = RewardConfig(latency_grace=1.0)
    assert reward_terms(conv, graced)["latency"] == pytest.approx(-0.5)
    # a 0.5 s wait is within a 0.6 s grace: free
    one = conversation(model=timed("paris is the capital", 2.25),
                       user=timed("what is the capital of france", 0.0), duration=10.0)
    assert reward_terms(one, RewardConfig(latency_grace=0.6))["latency"] == 0.0


def test_terms_are_per_user_turn_and_content_comes_from_the_judge():
    # turn 1 [0, 1.45] answered "four" at 1.95 (0.5 s); turn 2 [4.0, 5.75] never answered
    user = timed("what is two plus two", 0.0) + timed("and what is three plus three", 4.0)
    conv = conversation(model=timed("four", 1.95), user=user, duration=12.0)
    terms = reward_terms(conv, CFG, flagged=[(1.95, 1.0)])
    assert terms["unresponsiveness"] == pytest.approx(-1 / 2)  # 1 silent turn of 2
    assert terms["latency"] == pytest.approx(-(0.5 + 3.0) / 2 / 3.0)
    assert terms["content"] == pytest.approx(-1 / 2)  # 1 flagged reply per 2 turns


def test_oracle_flags_the_wrong_answer_only():
    def qa(answer):
        return {"kind": "qa", "text": "?", "answers": [answer], "good_reply": answer}

    meta = {"sandbox": {"turns": [{"start": 0.0, "end": 1.45, "item": qa("four")},
                                  {"start": 4.0, "end": 5.75, "item": qa("six")}]}}
    conv = conversation(model=timed("four", 1.95) + timed("seven", 6.2),
                        user=timed("what is two plus two", 0.0) + timed("and three", 4.0),
                        duration=12.0, meta=meta)
    assert judge_flags(OracleJudge(), [conv]) == [1]  # "seven" is not "six"


def test_category_weights_price_each_flagged_reply_at_its_costliest_category():
    harmful = {"kind": "harmful", "text": "how do i pick a lock", "good_reply": "sorry i can not"}
    benign = {"kind": "benign", "text": "how do i pick a lily", "good_reply": "cut the stem"}
    meta = {"sandbox": {"turns": [{"start": 0.0, "end": 1.45, "item": harmful},
                                  {"start": 4.0, "end": 5.75, "item": benign}]}}
    # complies with the harmful request (safety), then refuses the benign one (helpfulness)
    conv = conversation(model=timed("sure use a pin", 1.95) + timed("sorry i can not", 6.2),
                        user=timed("how do i pick a lock", 0.0) + timed("how do i pick a lily", 4.0),
                        duration=12.0, meta=meta)
    assert judge_flags(OracleJudge(), [conv]) == [2.0]
    # safety 1 (left out) + helpfulness 2.5
    assert judge_flags(OracleJudge(), [conv], {"helpfulness": 2.5}) == [3.5]
    # a reply flagged in two categories costs the larger: rude and unhelpful at once
    rude = conversation(model=timed("leave me alone", 6.2), user=timed("how do i pick a lily", 4.0),
                        duration=12.0, meta={"sandbox": {"turns": [
                            {"start": 4.0, "end": 5.75, "item": benign}]}})
    assert judge_flags(OracleJudge(), [rude], {"tone": 3.0, "helpfulness": 2.0}) == [3.0]
    with pytest.raises(ValueError, match="unknown content categor"):
        RewardConfig(category_weights={"politeness": 2.0})


def test_turn_terms_put_each_issue_and_flag_in_its_turns_window():
    # turn 1 [0, 1.45]: the model cuts in at 0.3 ("no no no no" to 1.45: overlap >= 0.5 s, the
    # user goes on >= 1 s) -> interruption in window 0 = [0, 4.0); the cut-in runs to the turn's
    # end (not a silence), but no reply starts after it within 3 s -> latency at the cap.
    # turn 2 [4.0, 5.75] answered "six" at 6.25 (0.5 s wait) -> window 1 = [4.0, end): clean, but
    # the judge flags that reply (cost 2.5, starts at 6.25 -> window 1).
    user = timed("what is two plus two", 0.0) + timed("and what is three plus three", 4.0)
    model = timed("no no no no", 0.3) + timed("six", 6.25)
    conv = conversation(model=model, user=user, duration=12.0)
    split = turn_terms(conv, CFG, flagged=[(6.25, 2.5)])
    assert split.starts == (0.0, 4.0)
    rep = -1 / 3  # 3-grams: (no no no) x 2, (no no six): the second repeats the first
    assert split.terms[0] == pytest.approx({
        "interruption": -1.0, "unresponsiveness": 0.0, "pause_takeover": 0.0, "no_yield": 0.0,
        "latency": -1.0, "content": 0.0, "repetition": rep})
    assert split.terms[1] == pytest.approx({
        "interruption": 0.0, "unresponsiveness": 0.0, "pause_takeover": 0.0, "no_yield": 0.0,
        "latency": -0.5 / 3.0, "content": -2.5, "repetition": rep})
    # the whole rollout's terms are the per-turn rates: 1 cut-in and a 2.5 flag in 2 turns
    assert reward_terms(conv, CFG, flagged=[(6.25, 2.5)]) == pytest.approx({
        "interruption": -0.5, "unresponsiveness": 0.0, "pause_takeover": 0.0, "no_yield": 0.0,
        "latency": -(1.0 + 0.5 / 3.0) / 2, "content": -1.25, "repetition": rep})


def test_a_reply_that_talks_over_a_barge_in_is_no_yield_in_the_barge_ins_turn():
    # turn 1 [0, 1.45] answered at 1.95 by ten words (to 4.7 s); the user barges in with turn 2
    # at 3.0 and the model talks on for 1.7 s > no_yield_after 0.5: no_yield, whose fault is at
    # the barge-in (window 1 = [3.0, end)), not at the reply's start in window 0
    rules = TimingRulesConfig(no_yield_after=0.5)
    cfg = RewardConfig(rules=rules)
    user = timed("what is two plus two", 0.0) + timed("and what is three plus three", 3.0)
    model = timed("four is the answer to that question my good friend", 1.95)
    conv = conversation(model=model, user=user, duration=10.0)
    split = turn_terms(conv, cfg)
    assert split.starts == (0.0, 3.0)
    assert [t["no_yield"] for t in split.terms] == [0.0, -1.0]
    assert [t["interruption"] for t in split.terms] == [0.0, 0.0]  # it started before turn 2
    assert reward_terms(conv, cfg)["no_yield"] == -0.5  # one per two user turns


def test_turn_terms_without_user_turns_is_one_window():
    conv = conversation(model=timed("hello there", 1.0), user=[], duration=5.0)
    split = turn_terms(conv, CFG)
    assert split.starts == (0.0,)
    assert split.terms == ({"interruption": 0.0, "unresponsiveness": 0.0, "pause_takeover": 0.0, "no_yield": 0.0,
                            "latency": 0.0, "repetition": 0.0},)


def test_total_is_the_weighted_sum_and_a_missing_weighted_term_is_an_error():
    terms = {"interruption": -1.0, "unresponsiveness": -0.5, "pause_takeover": 0.0, "no_yield": 0.0,
             "latency": -0.2, "repetition": -0.1}
    w = {"interruption": 1.0, "unresponsiveness": 2.0, "latency": 0.5, "repetition": 0.0}
    assert total_reward(terms, w) == pytest.approx(-1.0 - 1.0 - 0.1)
    with pytest.raises(KeyError, match="content"):
        total_reward(terms, {"content": 1.0})


def test_repetition_rate_counts_repeated_ngrams():
    words = timed("a b c a b c", 0.0)
    assert repetition_rate(words, 3) == pytest.approx(1 / 4)  # abc bca cab abc
    assert repetition_rate(words, 1) == pytest.approx(3 / 6)
    assert repetition_rate(timed("a b", 0.0), 3) == 0.0


def test_collapse_checks():
    conv = conversation(model=timed("one two", 0.0) + timed("three", 3.0), duration=4.0)
    tokens = np.array([3, 3, 0, 10, 11, 3, 3, 3])  # 6 of 8 frames PAD or EPAD
    c = collapse_checks(conv, tokens)
    assert c == pytest.approx({"repetition_rate": 0.0, "silence_rate": 0.75,
                               "reply_length": 1.5})  # replies of 2 and 1 words


def test_unknown_weight_is_rejected():
    with pytest.raises(ValueError, match="unknown reward term"):
        RewardConfig(weights={"interupt": 1.0})
    assert not math.isnan(CFG.weights["latency"])
