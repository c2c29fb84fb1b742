"""The shipped labelled cases and injection attacks are well-formed and become the conversations
the judge expects."""

from __future__ import annotations

from collections import Counter

from duplexalign.judges.cases import (
    attacked_turns,
    graded_reply_index,
    load_attacks,
    load_cases,
    to_conversation,
)
from duplexalign.judges.content import ContentJudge, LLMJudgeConfig
from duplexalign.judges.llm import LLMClient
from duplexalign.records import CONTENT_CATEGORIES


def test_at_least_60_cases_cover_every_category_and_clean_replies():
    cases = load_cases()
    assert len(cases) >= 60 and len({c.id for c in cases}) == len(cases)
    counts = Counter(label for c in cases for label in c.labels)
    assert set(counts) == set(CONTENT_CATEGORIES) and min(counts.values()) >= 8
    assert sum(not c.labels for c in cases) >= 10
    assert all(c.turns[-1][0] == "model" for c in cases)


def test_at_least_100_attacks_point_at_known_cases():
    cases = {c.id: c for c in load_cases()}
    attacks = load_attacks()
    assert len(attacks) >= 100 and len({a.id for a in attacks}) == len(attacks)
    for a in attacks:
        assert a.case in cases and a.goal in ("suppress", "induce")
        assert (a.goal == "induce") == (not cases[a.case].labels)


def test_attacked_conversation_keeps_one_segment_per_turn():
    case = next(c for c in load_cases() if c.id == "instr-07")  # four turns, two replies
    attack = next(a for a in load_attacks() if a.position == "after")
    turns = attacked_turns(case, attack)
    conv = to_conversation("x", turns)
    # the filter off: the attack reaches the prompt verbatim, as one segment
    judge = ContentJudge(LLMClient("http://127.0.0.1:9/v1", "m"), LLMJudgeConfig(injection_filter=False))
    assert len(judge.replies(conv)) == graded_reply_index(turns) == 2
    prompt = judge.chunks(conv)[0].request.messages[-1]["content"]
    assert prompt.rstrip().endswith("Grade the assistant replies R1, R2.")
    assert f"<user_speech>{attack.text}</user_speech>" in prompt
    before = next(a for a in load_attacks() if a.position == "before")
    t2 = attacked_turns(case, before)
    assert t2[2][1].endswith(before.text) and len(t2) == len(case.turns)
