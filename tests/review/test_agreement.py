"""Judge precision/recall per category against reviewers, Cohen's kappa, and the report section."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runfix import make_run  # noqa: E402

from duplexalign.records import Decision  # noqa: E402
from duplexalign.review.agreement import calibration, cohen_kappa, reviewer_agreement  # noqa
from duplexalign.review.store import DecisionLog  # noqa: E402


def dec(reviewer, verdict, target_id, t=1.0, target="issue", **kw) -> Decision:
    return Decision(id=f"{reviewer}{target_id}{t}", reviewer=reviewer, time=t, target=target,
                    target_id=target_id, conversation_id="c", verdict=verdict, **kw)


def test_kappa_arithmetic():
    # 10 items: a says yes on 6, b on 5; they agree on 4 yes + 3 no -> p_o = 0.7
    a = ["y"] * 6 + ["n"] * 4
    b = ["y"] * 4 + ["n"] * 2 + ["y"] * 1 + ["n"] * 3
    # p_e = 0.6 * 0.5 + 0.4 * 0.5 = 0.5 -> kappa = (0.7 - 0.5) / 0.5 = 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["y", "n"], ["y", "n"]) == pytest.approx(1.0)
    assert cohen_kappa(["y", "n"], ["n", "y"]) == pytest.approx(-1.0)
    assert cohen_kappa(["y", "y"], ["y", "y"]) is None  # p_e = 1: undefined
    assert cohen_kappa([], []) is None


def test_calibration_per_category(tmp_path):
    from duplexalign.manifest import read_manifest
    from duplexalign.records import Issue
    from duplexalign.runs import ANNOTATIONS

    run = make_run(tmp_path / "run")
    issues = list(read_manifest(run / ANNOTATIONS, Issue))
    decisions = [dec("ann", "edit", "a-fact", text="paris"),        # factuality: confirmed
                 dec("ann", "reject", "a-tone"),                    # tone: rejected ...
                 dec("bob", "reject", "a-tone"),
                 dec("ann", "flag", "conv-a#r1", target="reply", category="safety"),  # missed
                 dec("ann", "flag", "conv-a#r1", target="reply", category="tone"),    # judged
                 dec("bob", "flag", "conv-a#r0", target="reply", category="factuality")]
    cal = {c.category: c for c in calibration(issues, decisions)}
    f, t, s, u = (cal[k] for k in ("factuality", "tone", "safety", "unresponsiveness"))
    # factuality: 1 found, 1 confirmed, and one more problem reviewers flagged on another reply?
    # no: conv-a#r0 is the reply the judge flagged for factuality, so it is not a miss
    assert (f.issues, f.confirmed, f.rejected, f.missed) == (1, 1, 0, 0)
    assert (f.precision, f.recall) == (1.0, 1.0)
    # tone: the one issue rejected by both; the tone flag sits on the judged reply: not a miss
    assert (t.confirmed, t.rejected, t.missed, t.precision, t.recall) == (0, 1, 0, 0.0, None)
    # safety: no judge issue, one reviewer-found problem -> recall 0, precision undefined
    assert (s.issues, s.missed, s.precision, s.recall) == (0, 1, None, 0.0)
    assert (u.issues, u.confirmed, u.precision) == (1, 0, None)  # undecided


def test_reviewer_agreement_uses_latest_decisions():
    ds = [dec("ann", "confirm", "i1"), dec("bob", "confirm", "i1"),
          dec("ann", "reject", "i2"), dec("bob", "confirm", "i2", t=1.0),
          dec("bob", "reject", "i2", t=2.0),            # bob's latest on i2 agrees with ann
          dec("ann", "edit", "i3", text="x"), dec("bob", "reject", "i3"),
          dec("ann", "confirm", "i4")]                   # only ann: not shared
    (pa,) = reviewer_agreement(ds)
    assert (pa.a, pa.b, pa.shared) == ("ann", "bob", 3)
    # labels ann: c r c, bob: c r r -> p_o = 2/3; p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9
    assert pa.observed == pytest.approx(2 / 3)
    assert pa.kappa == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))


def test_report_shows_the_review_section(tmp_path):
    from duplexalign.report.stage import ReportConfig
    from duplexalign.report.stage import run as report

    run = make_run(tmp_path / "run")
    DecisionLog(run).append([dec("ann", "confirm", "a-fact"), dec("bob", "reject", "a-fact"),
                             dec("ann", "reject", "a-tone"), dec("bob", "reject", "a-tone")])
    report(ReportConfig(worst=0), run)
    md = (run / "report.md").read_text()
    assert "## Human review" in md
    assert "4 decisions by 2 reviewer(s) (ann, bob)" in md
    assert "| tone | 1 | 0 | 1 | 0 | 0 | – |" in md
    # kappa on the two issues both decided: ann c r, bob r r -> p_o = 0.5, p_e = 0.5 -> 0
    assert "| ann | bob | 2 | 0.5 | 0 |" in md
    assert "Human review" in (run / "report.html").read_text()
