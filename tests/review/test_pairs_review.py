"""`pairs` reads the review decisions (`pairs.review`): a rejected issue makes no pair, an edited
reply becomes the chosen text, `only_confirmed` keeps only confirmed issues, a pair reviewers did
not prefer leaves the mix, and a change of decisions reruns the stage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "pairs"))
from pairfakes import FakeRewriter, FakeVoice  # noqa: E402
from runfix import make_run  # noqa: E402

from duplexalign.manifest import iter_dicts, read_manifest  # noqa: E402
from duplexalign.pairs.config import PairsConfig  # noqa: E402
from duplexalign.pairs.stage import run as run_pairs  # noqa: E402
from duplexalign.records import PreferencePair  # noqa: E402
from duplexalign.review.store import DecisionLog, make_decision  # noqa: E402


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "run")


def pairs(run: Path, mode: str = "prefer"):
    voice = FakeVoice()
    stats = run_pairs(PairsConfig(review=mode), run, rewriter=FakeRewriter(),
                      voice=lambda name: voice)
    made = {p.issue_ids[0]: p for p in read_manifest(run / "pairs.jsonl.gz", PreferencePair)}
    return stats, made, voice


def decide(run: Path, target_id: str, verdict: str, reviewer: str = "ann", target="issue",
           conv="conv-a", **kw) -> None:
    DecisionLog(run).append([make_decision(reviewer, target, target_id, conv, verdict, **kw)])


def test_without_decisions_every_issue_makes_a_pair(run):
    stats, made, _ = pairs(run)
    assert sorted(made) == ["a-fact", "a-tone", "b-silence"]
    assert "dropped/review_rejected" not in stats.counts


def test_reject_and_edit(run):
    decide(run, "a-tone", "reject", reason="it was a joke")
    decide(run, "a-fact", "edit", text="paris is the capital")
    stats, made, voice = pairs(run)
    assert sorted(made) == ["a-fact", "b-silence"]
    assert made["a-fact"].chosen.text == "paris is the capital"
    assert "paris is the capital" in voice.calls
    assert stats.counts["dropped/review_rejected"] == 1
    dropped = [d for d in iter_dicts(run / "pairs/dropped.jsonl.gz")
               if d["reason"] == "review_rejected"]
    assert [(d["id"], d["detail"]) for d in dropped] == [("a-tone@review", "ann: it was a joke")]


def test_ignore_reads_no_decision(run):
    decide(run, "a-tone", "reject")
    _, made, _ = pairs(run, "ignore")
    assert sorted(made) == ["a-fact", "a-tone", "b-silence"]


def test_only_confirmed(run):
    decide(run, "a-fact", "confirm")
    stats, made, _ = pairs(run, "only_confirmed")
    assert sorted(made) == ["a-fact"]
    assert stats.counts["dropped/review_undecided"] == 2


def test_latest_per_reviewer_and_majority(run):
    decide(run, "a-tone", "reject", reviewer="ann")
    decide(run, "a-tone", "confirm", reviewer="ann")  # ann changed her mind
    decide(run, "a-tone", "reject", reviewer="bob")
    decide(run, "a-tone", "reject", reviewer="cid")
    _, made, _ = pairs(run)
    assert "a-tone" not in made  # bob and cid outvote ann


def test_new_decisions_rerun_the_stage_and_rebuild_what_changed(run):
    _, first, _ = pairs(run)
    assert first["a-fact"].chosen.text == "the capital of france is paris"
    decide(run, "a-fact", "edit", text="it is paris")
    decide(run, "a-tone", "reject")
    stats, made, voice = pairs(run)
    assert not stats.skipped
    assert sorted(made) == ["a-fact", "b-silence"]
    assert made["a-fact"].chosen.text == "it is paris"
    assert voice.calls == ["it is paris"]  # only the edited reply is spoken again
    assert stats.counts["dropped/review_superseded"] == 2  # the old a-fact and a-tone pairs
    # a reviewer takes the rejection back: the a-tone pair comes back without new speech
    decide(run, "a-tone", "confirm", reviewer="ann")
    stats, made, voice = pairs(run)
    assert sorted(made) == ["a-fact", "a-tone", "b-silence"] and voice.calls == []
    assert "dropped/review_rejected" not in stats.counts
    # the same decisions again: nothing to do
    assert pairs(run)[0].skipped


def test_a_pair_reviewers_did_not_prefer_leaves_the_mix(run):
    _, made, _ = pairs(run)
    pid = made["a-tone"].id
    decide(run, pid, "prefer_rejected", target="pair", shown_first="chosen")
    decide(run, made["b-silence"].id, "neither", target="pair", conv="conv-b",
           shown_first="rejected")
    stats, made, _ = pairs(run)
    assert sorted(made) == ["a-fact"]
    assert stats.counts["dropped/review_pair_prefer_rejected"] == 1
    assert stats.counts["dropped/review_pair_neither"] == 1


def test_the_wavs_of_a_pair_the_filter_drops_are_deleted(run):
    """The workers write each built pair's wavs; a pair the driver's filter then drops (here
    every window is longer than `max_window`) leaves no file behind."""
    voice = FakeVoice()
    stats = run_pairs(PairsConfig(max_window=0.5), run, rewriter=FakeRewriter(),
                      voice=lambda name: voice)
    assert stats.counts["written"] == 0 and voice.calls  # built (spoken), then dropped
    reasons = {d["reason"] for d in iter_dicts(run / "pairs/dropped.jsonl.gz")}
    assert "too_long" in reasons
    audio = run / "pairs" / "audio"
    assert not audio.exists() or list(audio.rglob("*")) == []
