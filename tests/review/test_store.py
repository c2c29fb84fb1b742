"""The decisions log: typed records, crash-safe appends, several writers, latest per reviewer."""

from __future__ import annotations

import gzip

import pytest
from pydantic import ValidationError

from duplexalign.records import Decision, Rating
from duplexalign.review.store import (
    DecisionLog,
    complete_end,
    consensus,
    latest,
    make_decision,
    resolved,
)


def dec(reviewer: str, verdict: str, t: float, target_id: str = "i1", **kw) -> Decision:
    target = kw.pop("target", "issue")
    return Decision(id=f"{reviewer}-{t}-{target_id}", reviewer=reviewer, time=t, target=target,
                    target_id=target_id, conversation_id="c", verdict=verdict, **kw)


def test_decision_records_are_checked():
    with pytest.raises(ValidationError, match="not one of"):
        dec("a", "prefer_chosen", 1.0)  # a pair verdict on an issue
    with pytest.raises(ValidationError, match="needs the improved reply"):
        dec("a", "edit", 1.0, text="  ")
    with pytest.raises(ValidationError, match="needs an issue category"):
        dec("a", "flag", 1.0, target="reply", category="nonsense")
    with pytest.raises(ValidationError):
        Rating(at=60, coherence=3, engagement=3, relevance=3)  # only 30 / 90 / 120 s
    r = dec("a", "rate", 1.0, target="conversation", target_id="c",
            rating=Rating(at=90, coherence=5, engagement=4, relevance=1))
    assert Decision.from_dict(r.to_dict()) == r
    assert r.target_key == "conversation:c@90"


def test_append_read_and_history(tmp_path):
    log = DecisionLog(tmp_path)
    log.append([dec("ann", "confirm", 1.0)])
    log.append([dec("ann", "reject", 2.0), dec("bob", "confirm", 1.5)])
    got = list(log.read())
    assert [(d.reviewer, d.verdict) for d in got] == [("ann", "confirm"), ("ann", "reject"),
                                                     ("bob", "confirm")]
    # history is kept in the file; the latest decision per reviewer wins
    per = latest(got)["issue:i1"]
    assert per["ann"].verdict == "reject" and per["bob"].verdict == "confirm"
    # a multi-member gzip that the plain gzip module reads too
    assert gzip.decompress(log.path.read_bytes()).count(b"\n") == 3


def test_two_writers_side_by_side(tmp_path):
    a, b = DecisionLog(tmp_path), DecisionLog(tmp_path)  # two processes' handles
    for k in range(5):
        a.append([dec("ann", "confirm", float(k), f"i{k}")])
        b.append([dec("bob", "reject", float(k), f"i{k}")])
    got = list(DecisionLog(tmp_path).read())
    assert len(got) == 10
    assert [d.reviewer for d in got] == ["ann", "bob"] * 5


def test_a_cut_last_member_is_set_aside_and_nothing_else_lost(tmp_path):
    log = DecisionLog(tmp_path)
    log.append([dec("ann", "confirm", 1.0, "i1")])
    whole = log.path.stat().st_size
    # a writer that died half-way through its member
    other = gzip.compress(b'{"id": "x", "reviewer": "bob"}\n' * 50, mtime=0)
    with open(log.path, "ab") as f:
        f.write(other[: len(other) // 2])
    assert complete_end(log.path.read_bytes()) == whole
    assert [d.target_id for d in log.read()] == ["i1"]  # readers stop before the cut tail
    DecisionLog(tmp_path).append([dec("ann", "reject", 2.0, "i2")])
    assert [d.target_id for d in DecisionLog(tmp_path).read()] == ["i1", "i2"]
    broken = list(tmp_path.glob("review/decisions.jsonl.gz.broken-*"))
    assert [p.name for p in broken] == [f"decisions.jsonl.gz.broken-{whole}"]
    assert broken[0].read_bytes() == other[: len(other) // 2]


def test_consensus_majority_then_latest():
    # two confirm-class votes (one an edit) beat one later reject; the latest of them wins
    votes = {"a": dec("a", "confirm", 1.0), "b": dec("b", "edit", 2.0, text="better"),
             "c": dec("c", "reject", 3.0)}
    assert consensus(votes).verdict == "edit"
    # a tie goes to the side with the most recent decision
    tie = {"a": dec("a", "confirm", 1.0), "c": dec("c", "reject", 3.0)}
    assert consensus(tie).verdict == "reject"
    assert resolved(tie.values())["issue:i1"].reviewer == "c"


def test_flags_of_two_categories_on_one_reply_both_count():
    f1 = dec("a", "flag", 1.0, "c#r0", target="reply", category="tone")
    f2 = dec("a", "flag", 2.0, "c#r0", target="reply", category="safety")
    assert len(latest([f1, f2])) == 2


def test_make_decision_stamps_id_and_time():
    d1 = make_decision("ann", "issue", "i1", "c", "confirm")
    d2 = make_decision("ann", "issue", "i1", "c", "confirm")
    assert d1.id != d2.id and d2.time >= d1.time > 0


def test_read_new_reads_each_member_once(tmp_path):
    log = DecisionLog(tmp_path)
    assert log.read_new(0) == ([], 0)
    log.append([dec("ann", "confirm", 1.0, "i1")])
    got, off = log.read_new(0)
    assert [d.target_id for d in got] == ["i1"] and off == log.size()
    log.append([dec("bob", "reject", 2.0, "i2"), dec("bob", "reject", 3.0, "i3")])
    got, off2 = log.read_new(off)
    assert [d.target_id for d in got] == ["i2", "i3"] and off2 == log.size()
    with open(log.path, "ab") as f:  # a writer mid-append: its member is not complete yet
        f.write(gzip.compress(b'{"id": "x"}\n', mtime=0)[:12])
    assert log.read_new(off2) == ([], off2)


def _append_many(root: str, reviewer: str, n: int) -> None:
    log = DecisionLog(root)
    for k in range(n):
        log.append([dec(reviewer, "confirm", float(k), f"i{k}")])


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), r, 40)) for r in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    got = list(DecisionLog(tmp_path).read())
    assert sorted((d.reviewer, d.target_id) for d in got) == sorted(
        (r, f"i{k}") for r in ("a", "b") for k in range(40))
