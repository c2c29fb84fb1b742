"""pipeline: the stage runner on a tiny real run, and what a rerun after a change reruns.

One conversation spoken by espeak-ng (the user asks, then tells a story the model talks over)
goes through the real stages: ingest (jsonl), annotate (timing rules only), pairs (retime),
streams (the committed sandbox codec and tokenizer) and train (one step from the sandbox's instruct
model). Each stage's digest covers its config and the bytes of its inputs, so a config change of
one stage that leaves its outputs as they were reruns that stage and nothing else, and a change of
the logs reruns everything downstream.
"""

from __future__ import annotations

import json
import shutil

import pytest

from duplexalign import pipeline
from duplexalign.errors import ConfigError
from duplexalign.manifest import iter_dicts
from duplexalign.records import Word
from duplexalign.sandbox.build import ASSETS_DIR
from duplexalign.sandbox.demo import stage_defaults
from duplexalign.speech.audio import place, write_audio
from duplexalign.speech.voices import get_voice

RUN = ("ingest", "annotate", "pairs", "streams", "train")
BASE = ["ingest.format=jsonl", "annotate.judge=none", "annotate.in_flight=1",
        "annotate.progress=false", "annotate.rules.interruption_min_overlap=0.2",
        "annotate.rules.interruption_min_user_continue=0.4",
        "train.max_steps=1", "train.batch_size=1", "train.micro_batch_size=1",
        "train.checkpoint_every=1", "train.val.every=0"]


def _say(voice: str, text: str, start: float) -> tuple:
    sp = get_voice(voice).synthesize(text)
    return sp.wav, [Word(text=w.text, start=start + w.start, end=start + w.end) for w in sp.words]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A jsonl log: the user asks a question, then tells a story; the model cuts in early."""
    root = tmp_path_factory.mktemp("logs")
    u1, w1 = _say("user_0", "can you help me plan a trip", 0.3)
    t = w1[-1].end + 1.2
    u2, w2 = _say("user_0", "i want to go to rome next month with my sister and her kids", t)
    m1, wm = _say("model", "sure where do you want to go", w2[1].start)
    duration = max(w2[-1].end, wm[-1].end) + 2.0
    write_audio(root / "model.wav", place([(wm[0].start - 0.0, m1)], duration))
    write_audio(root / "user.wav", place([(0.3, u1), (t, u2)], duration))
    line = {"id": "c1", "duration": duration,
            "words": {"model": [[w.text, w.start, w.end] for w in wm],
                      "user": [[w.text, w.start, w.end] for w in w1 + w2]},
            "audio": {"model": "model.wav", "user": "user.wav"}}
    (root / "log.jsonl").write_text(json.dumps(line) + "\n")
    return root


def _configs(logs, extra=()):
    cfgs = pipeline.load_configs(None, [*BASE, f"ingest.input={logs / 'log.jsonl'}", *extra], RUN,
                                 defaults=stage_defaults(ASSETS_DIR))
    return cfgs


@pytest.fixture(scope="module")
def finished(logs, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    stats = pipeline.run(_configs(logs), run, RUN)
    assert stats["pairs"].counts["written"] >= 1, stats["pairs"].counts
    assert not any(s.skipped for s in stats.values())
    return run


def _copy(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def test_a_rerun_with_nothing_changed_skips_every_stage(finished, logs, tmp_path):
    run = _copy(finished, tmp_path)
    stats = pipeline.run(_configs(logs), run, RUN)
    assert all(stats[s].skipped for s in RUN)
    assert stats["pairs"].counts["written"] >= 1  # restored, not recounted as zero


# One option per stage that enters its digest but leaves its outputs as they were.
CHANGES = {
    "ingest": "ingest.max_words=150000",
    "annotate": "annotate.llm.model=another",
    "pairs": "pairs.max_window=39.0",
    "streams": "streams.max_shard_bytes=1000000",
    "train": "train.checkpoint_every=2",
}


@pytest.mark.parametrize("stage", RUN)
def test_a_config_change_reruns_that_stage_and_nothing_else(stage, finished, logs, tmp_path):
    run = _copy(finished, tmp_path)
    stats = pipeline.run(_configs(logs, [CHANGES[stage]]), run, RUN)
    assert {s: stats[s].skipped for s in RUN} == {s: s != stage for s in RUN}
    again = pipeline.run(_configs(logs, [CHANGES[stage]]), run, RUN)
    assert all(again[s].skipped for s in RUN)


def test_new_logs_rerun_every_stage_downstream(finished, logs, tmp_path):
    run = _copy(finished, tmp_path)
    new = tmp_path / "logs"
    shutil.copytree(logs, new)
    line = json.loads((new / "log.jsonl").read_text())
    line["words"]["user"][0][0] = "could"  # the user's first word was heard differently
    (new / "log.jsonl").write_text(json.dumps(line) + "\n")
    cfgs = _configs(logs)
    cfgs["ingest"].input = new / "log.jsonl"
    # ingest reruns (its input changed) but keeps the conversation already written under this id
    # (it resumes by id), so its output and everything downstream stay as they were
    stats = pipeline.run(cfgs, run, RUN)
    assert not stats["ingest"].skipped
    assert [s for s in RUN if not stats[s].skipped] == ["ingest"]
    shutil.rmtree(run)  # started over: the new words reach every stage
    stats = pipeline.run(cfgs, run, RUN)
    assert not any(stats[s].skipped for s in RUN)


def test_overrides_that_nothing_reads_are_errors_naming_the_key(logs):
    with pytest.raises(ConfigError, match="evaluate.limit: not read"):
        pipeline.load_configs(None, ["evaluate.limit=3"], RUN)
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        pipeline.load_configs(None, ["trian.lr=1"], RUN)
    with pytest.raises(ConfigError, match="train.lrr"):
        pipeline.load_configs(None, ["train.lrr=1"], RUN)
    assert pipeline.load_configs(None, ["train.lr=2e-5"], ("train",))["train"].lr == 2e-5


def test_stages_are_parsed_in_pipeline_order():
    assert pipeline.parse_stages("train,ingest") == ("ingest", "train")
    assert pipeline.parse_stages(None) == pipeline.DEFAULT_STAGES
    with pytest.raises(ConfigError, match="'tran'"):
        pipeline.parse_stages("tran")


def test_the_stage_drops_are_counted_by_reason(finished):
    counts = json.loads((finished / "stats.json").read_text())["pairs"]["counts"]
    reasons = {}
    for d in iter_dicts(finished / "pairs" / "dropped.jsonl.gz"):
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    assert {k[len("dropped/"):]: v for k, v in counts.items()
            if k.startswith("dropped/") and not k.startswith("dropped/mix_over_target")} == reasons
