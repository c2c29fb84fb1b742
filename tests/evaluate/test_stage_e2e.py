"""End to end: a tiny real model, real TTS voice, real MelRVQ codec, 5 items per task, via the CLI;
rerunning is a no-op; compare; multiturn with a canned judge; the trainer's validation callback."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from duplexalign.cli.main import main
from duplexalign.evaluate.callback import make_validation_callback
from duplexalign.evaluate.compare import compare, load_run, to_markdown
from duplexalign.evaluate.speak import user_items
from duplexalign.evaluate.stage import evaluate_items
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import TaskContext

TASK_LIST = "llama_questions,webquestions,triviaqa,xstest,reply_length,timing"


def _evaluate(assets, shared_data, out, seed=0):
    return main(["evaluate", str(assets["checkpoint"]), "--tasks", TASK_LIST, "--limit", "5",
                 "--out", str(out), "--set", f"codec.path={assets['codec']}",
                 "--set", f"data_dir={shared_data}", "--set", "decode_audio=false",
                 "--set", "resamples=50", "--set", "answer_seconds=3.2", "--set", f"sampling.seed={seed}"])


def test_evaluate_compare_end_to_end(eval_assets, shared_data, tmp_path, capsys):
    out = tmp_path / "eval_a"
    assert _evaluate(eval_assets, shared_data, out) == 0
    res = json.loads((out / "results.json").read_text())
    assert sorted(res["tasks"]) == sorted(TASK_LIST.split(","))
    for name, t in res["tasks"].items():
        assert t["num_samples"] == 5
        assert t["primary"] in t["metrics"]
        rows = [json.loads(x) for x in (out / name / "samples.jsonl").read_text().splitlines()]
        assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
        r = rows[0]
        assert r["sampling"]["batch_seed"] in (0, 1) and r["words"]["user"]  # the user spoke
        assert len(r["text_tokens"]) == round(r["duration"] * 12.5)
        wav, sr = sf.read(out / r["audio"])
        assert sr == 24000 and wav.shape == (round(r["duration"] * 24000), 2)
        assert np.abs(wav[:, 1]).max() > 0.01  # channel 1 = the user's voice
    acc = res["tasks"]["llama_questions"]["metrics"]["accuracy"]
    assert 0.0 <= acc["value"] <= 1.0 and acc["n"] == 5
    assert res["tasks"]["timing"]["metrics"]["turn_end_takeover_rate"]["n"] >= 1
    assert res["tasks"]["xstest"]["extras"]["classifier_agreement"]["binary"]["n"] == 900
    assert res["checkpoint_digest"] and res["config"]["limit"] == 5

    # rerunning with the same config is a no-op
    mtime = (out / "timing" / "samples.jsonl").stat().st_mtime_ns
    assert _evaluate(eval_assets, shared_data, out) == 0
    assert (out / "timing" / "samples.jsonl").stat().st_mtime_ns == mtime
    stats = json.loads((out / "stats.json").read_text())["evaluate"]["counts"]
    assert stats == {f"skipped/{n}": 1 for n in TASK_LIST.split(",")}

    # a second run with another sampling seed, then the paper-style table
    out_b = tmp_path / "eval_b"
    assert _evaluate(eval_assets, shared_data, out_b, seed=1) == 0
    cmp = compare(load_run(out), load_run(out_b), resamples=30)
    assert sorted(r["task"] for r in cmp["rows"]) == sorted(TASK_LIST.split(","))
    assert all(r["paired"] and r["n_common"] == 5 for r in cmp["rows"])
    assert [a["task"] for a in cmp["averages"]] == ["Avg QA", "Avg safety"]
    same = compare(load_run(out), load_run(out), resamples=30)
    assert all(r["delta"]["value"] in (0.0, None) for r in same["rows"])
    table = to_markdown(cmp)
    assert "| llama_questions | accuracy ↑ |" in table and "Avg QA" in table
    capsys.readouterr()
    assert main(["compare", str(out), str(out_b)]) == 0
    assert "Avg safety" in capsys.readouterr().out

    # the report of a folder holding both evaluations: table, latency histograms, timelines
    assert main(["report", str(tmp_path), "--worst", "1"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "| Avg QA | mean of primaries ↑ |" in md and "latency histograms" in md
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") >= 2


class CannedJudge:
    """Stands in for the LLM endpoint: rates 3/4/2, and the second request fails."""

    model = "canned"

    def __init__(self):
        self.requests = []

    def run_many(self, reqs):
        from duplexalign.judges.llm import LLMFailure, LLMResult

        self.requests += reqs
        return [LLMFailure(key="k", kind="timeout", detail="slow", attempts=3) if i == 1 else
                LLMResult(data={"coherence": 3, "engagement": 4, "relevance": 2}, key="k",
                          model="canned", dialect="json_schema") for i, r in enumerate(reqs)]


def test_multiturn_and_callback_as_library_calls(eval_assets, shared_data):
    from duplexalign.models.presets import load_model
    from duplexalign.speech.codec import load_melrvq
    from duplexalign.speech.voices import get_voice
    from duplexalign.streams.tokenizer import load_tokenizer

    model = load_model(eval_assets["checkpoint"])
    tok = load_tokenizer(eval_assets["tokenizer"])
    codec = load_melrvq(eval_assets["codec"])
    judge = CannedJudge()
    ctx = TaskContext(data_dir=shared_data, limit=2, judge=judge, resamples=20,
                      options={"multiturn": {"turn_gap": 3.0, "max_duration": 12.0}})
    prompts = TASKS.get("multiturn").prompts(ctx)
    assert prompts[0].turns[0] == ["Ask to order a simple breakfast set for pickup."]
    items = user_items(prompts, get_voice("user_6"), codec, progress=False)
    assert abs(items[0].num_frames / 12.5 - 12.0) < 0.1
    res = evaluate_items(model, tok, items, ["multiturn"], ctx)
    m = res["multiturn"]["metrics"]
    assert len(judge.requests) == 2  # one per rollout: 90 s and 120 s lie beyond 12 s rollouts
    assert m["coherence@30s"]["value"] == 3 and m["relevance@30s"]["value"] == 2
    assert m["coherence@30s"]["n"] == 1  # the second sample's request failed
    assert m["engagement@90s"]["n"] == 0
    assert m["judge_failure_rate"]["value"] == 0.5
    assert res["multiturn"]["samples"][1]["failures"][0]["kind"] == "timeout"
    assert "[0.5s] USER: Ask to order" in judge.requests[0].messages[1]["content"]

    model.train()
    qa = TASKS.get("timing").prompts(TaskContext(data_dir=shared_data, limit=3))
    cb = make_validation_callback(user_items(qa, get_voice("user_6"), codec, progress=False),
                                  tok, TaskContext(data_dir=shared_data, resamples=10))
    metrics = cb(model, 10)
    assert model.training  # mode restored
    assert {"timing/no_response_rate", "reply_length/words_per_reply"} <= set(metrics)
    assert cb(model, 20) == metrics  # same seed, same items: reproducible
