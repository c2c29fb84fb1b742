"""Policy (grouping, first reply + one more), filters with reasons and the category mix."""

from __future__ import annotations

from pairfakes import conversation, issue, issues

from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.filters import PairFilter, mix
from duplexalign.pairs.policy import candidates, group_issues
from duplexalign.records import PreferencePair, ReplyVariant, Word


def test_groups_and_first_reply_plus_one_more():
    conv = conversation()
    extra = issue("content", "tone", (6.0, 7.15), score=2, improved_reply="sorry")
    cands, drops = candidates(conv, [*issues(), extra], PairsConfig())
    # the tone issue joins the interruption of the same reply; the third reply is over the limit
    assert [(c.category, c.strategy, len(c.issues)) for c in cands] == [
        ("content", "rewrite", 1), ("interruption", "retime", 2)]
    assert [d[1] for d in drops] == ["policy_extra_reply"]
    assert cands[1].improved_reply() == "sorry"


def test_unmapped_and_unproblematic_issues_are_dropped_with_reasons():
    conv = conversation()
    good = issue("content", "helpfulness", (3.0, 4.15), score=4)
    ny = issue("timing", "no_yield", (6.0, 7.15))
    cands, drops = candidates(conv, [good, ny], PairsConfig(max_content_score=2))
    assert cands == []
    assert sorted(d[1] for d in drops) == ["no_strategy:no_yield", "not_a_problem"]


def test_group_issues_by_reply_id():
    # two issues about the first reply (judge and rules), one about the second, one silence
    a = issue("content", "tone", (3.0, 4.15))
    b = issue("timing", "interruption", (3.0, 4.15))
    c = issue("content", "safety", (6.0, 7.15))
    d = issue("timing", "unresponsiveness", (4.5, 6.0))
    assert (a.reply_id, c.reply_id, d.reply_id) == ("conv/1#r0", "conv/1#r1", "conv/1#silence4500")
    assert [[i.category for i in g] for g in group_issues([c, d, b, a])] == [
        ["interruption", "tone"], ["unresponsiveness"], ["safety"]]


def _pair(pid, window, category="content", text="hi", cid="conv/1", chosen_at=None):
    s = chosen_at if chosen_at is not None else window[0] + 0.1
    return PreferencePair(id=pid, conversation_id=cid, window=window, context_start=0.0,
                          chosen=ReplyVariant(words=[Word(text=text, start=s, end=s + 0.2)]),
                          rejected=ReplyVariant(), issue_ids=[], strategy="rewrite",
                          category=category)


def test_filters_give_reasons():
    conv = conversation()
    f = PairFilter(PairsConfig(min_window=0.5, max_window=5.0))
    assert f.check(_pair("a", (2.0, 4.0)), conv) is None
    assert f.check(_pair("b", (2.0, 4.0)), conv)[0] == "duplicate"
    assert f.check(_pair("c", (3.5, 6.0), text="x"), conv)[0] == "overlaps_previous_pair"
    assert f.check(_pair("d", (7.0, 7.2)), conv)[0] == "too_short"
    assert f.check(_pair("e", (7.0, 13.0)), conv)[0] == "too_long"
    # chosen words over "tell me a joke please" (user talks 5.0-6.45) for >1 s
    long = PreferencePair(**{**_pair("g", (4.5, 7.0)).model_dump(), "chosen": ReplyVariant(
        words=[Word(text="blah", start=4.6, end=6.4)])})
    assert f.check(long, conv)[0] == "chosen_overlaps_user"


def test_mix_hits_target_shares():
    pairs = ([_pair(f"c{i}", (0.0, 1.0), "content") for i in range(10)]
             + [_pair(f"i{i}", (0.0, 1.0), "interruption") for i in range(3)]
             + [_pair(f"s{i}", (0.0, 1.0), "silence") for i in range(20)])
    kept, dropped = mix(pairs, {"content": 0.5, "interruption": 0.25, "silence": 0.25}, seed=1)
    # interruption binds: N = 3 / 0.25 = 12 -> 6 content, 3 interruption, 3 silence
    cats = [p.category for p in kept]
    assert (cats.count("content"), cats.count("interruption"), cats.count("silence")) == (6, 3, 3)
    assert len(dropped) == 33 - 12
    assert mix(pairs, {"content": 0.5, "interruption": 0.25, "silence": 0.25}, seed=1)[0] == kept
    assert mix(pairs, None) == (pairs, [])


def test_annotations_without_reply_ids_get_one_clear_error(tmp_path):
    import pytest

    from duplexalign.errors import BadInput
    from duplexalign.manifest import write_manifest
    from duplexalign.pairs.stage import run
    from duplexalign.runs import RunDir

    write_manifest(tmp_path / "conversations.jsonl.gz", [conversation()])
    old = issue("content", "tone", (3.0, 4.15)).to_dict()
    del old["reply_id"], old["reply_words"]
    write_manifest(tmp_path / "annotations.jsonl.gz", [old])
    RunDir(tmp_path).mark_done("ingest")
    RunDir(tmp_path).mark_done("annotate")
    with pytest.raises(BadInput, match="before reply ids"):
        run(PairsConfig(), tmp_path, rewriter=None, voice=lambda name: None)
