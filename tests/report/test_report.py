"""The report: every section from hand-made run files, and graceful degradation on an empty run."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest

from duplexalign.cli.main import main
from duplexalign.evaluate.stage import aggregate_task, sample_record, score_rollouts
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import TaskContext
from duplexalign.report.stage import ReportConfig, badness, find_evaluations, problem_spans, run
from duplexalign.runs import RunDir, StageStats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from evalhelpers import fake_rollout, words  # noqa: E402

Q = words("what is the capital of france", 0.5)  # ends 2.25


def _write_eval(d: Path, answers: list[str | None], shared_data: Path) -> None:
    """An evaluation output (llama_questions + timing) scored by the real task code."""
    ctx = TaskContext(data_dir=shared_data, resamples=20)
    tasks = {}
    for name in ("llama_questions", "timing"):
        task = TASKS.get(name)
        rolls = [fake_rollout(words(a, 3.0) if a else [], Q, id=f"q{i}", golds=["Paris"],
                              turn_ends=[2.25], pauses=[], turn_starts=[0.5])
                 for i, a in enumerate(answers)]
        scores = score_rollouts(task, rolls, ctx)
        (d / name).mkdir(parents=True)
        (d / name / "samples.jsonl").write_text("".join(
            json.dumps(sample_record(task, r, s)) + "\n" for r, s in zip(rolls, scores,
                                                                         strict=True)))
        tasks[name] = aggregate_task(task, scores, ctx)
    (d / "results.json").write_text(json.dumps({"checkpoint": str(d), "tasks": tasks}))


@pytest.fixture
def full_run(tmp_path, shared_data):
    root = tmp_path / "run"
    (root / "train").mkdir(parents=True)
    (root / "train" / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": s, "loss": 0.69 - 0.01 * s, "rewards/margins": 0.02 * s,
         "rewards/accuracies": 0.5 + 0.04 * s, "val/timing/no_response_rate": 0.3 - 0.02 * s})
        + "\n" for s in range(1, 6)))
    st = StageStats("annotate")
    st.add("issues/timing/unresponsiveness", 7)
    st.add("issues/content/factuality", 3)
    st.add("quarantined/no_words", 1)
    RunDir(root).write_stats(st)
    _write_eval(root / "eval" / "before", ["i do not know", None, "paris", None], shared_data)
    _write_eval(root / "eval" / "after", ["paris", "it is paris", "paris", None], shared_data)
    return root


def test_full_report(full_run):
    assert [d.name for d in find_evaluations(full_run)] == ["before", "after"]
    stats = run(ReportConfig(worst=2, resamples=20), full_run)
    assert stats.counts["sections_with_data"] == 5
    md = (full_run / "report.md").read_text()
    row = next(x for x in md.splitlines() if x.startswith("| llama_questions |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].startswith("25.0 [") and cells[3].startswith("75.0 [")  # 1/4 then 3/4 right
    assert cells[4].startswith("50.0 [")  # paired delta
    assert "| timing/unresponsiveness | 7 |" in md and "| content/factuality | 3 |" in md
    assert "no response" in md  # the worst samples are the silent ones, highlighted
    for img in re.findall(r"\]\((report_assets/[^)]+\.png)\)", md):
        assert (full_run / img).read_bytes().startswith(b"\x89PNG")
    page = (full_run / "report.html").read_text()
    pngs = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(pngs) == stats.counts["figures"] == 2 + 1 + 1 + 2  # train x2, issues, timing, worst
    assert all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert "src='http" not in page and "<script" not in page  # self-contained
    assert json.loads((full_run / "stats.json").read_text())["report"]["counts"]["figures"] == 6


def test_empty_run_degrades_gracefully(tmp_path, capsys):
    root = tmp_path / "empty"
    root.mkdir()
    assert main(["report", str(root)]) == 0
    md = (root / "report.md").read_text()
    for missing in ("train/metrics.jsonl", "annotate", "No evaluation found", "timing",
                    "No evaluation samples"):
        assert missing in md
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2


def test_badness_and_problem_spans():
    assert badness({"correct": False, "no_responses": 1}) == 2
    assert badness({"correct": True, "barge_ins": 2, "yields": 1}) == 1
    user = words("tell me about rome please", 0.0)  # 0 .. 1.45
    model = words("rome is old and big", 0.6)
    spans = problem_spans(user, model, {"turn_ends": [1.45], "pauses": []}, 10.0)
    assert [s[2] for s in spans] == ["interruption"]
    spans = problem_spans(user, [], {"turn_ends": [1.45]}, 10.0)
    assert spans == [(1.45, 4.45, "no response")]
