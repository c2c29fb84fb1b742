"""End-to-end: `duplexalign demo --quick --method grpo` trains online against the simulated users,
and `duplexalign train --set train.method=grpo` replays the user channel of the same demo's logs.

Asserts that the online trainer logged every reward term and the collapse checks per step, that
rollout validation ran, that the held-out table was computed, and that replaying the ingested
conversations (user words fixed, the model's new timing scored against them) trains too.
"""

from __future__ import annotations

import json

import pytest

from duplexalign.cli.demo import REPO_CONFIGS
from duplexalign.cli.main import main
from duplexalign.sandbox.table import METRICS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
TERMS = ("interruption", "unresponsiveness", "pause_takeover", "no_yield", "latency", "content",
         "repetition")


def _metrics(train_dir):
    return [json.loads(x) for x in (train_dir / "metrics.jsonl").read_text().splitlines()]


def test_demo_quick_grpo_then_replaying_its_logs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--method", "grpo", "--out", str(out)]) == 0
    run = out / "run"
    rows = _metrics(run / "train")
    assert len(rows) == 10  # the quick preset's max_steps
    for r in rows:
        for t in TERMS:
            assert f"reward/{t}" in r
        for c in ("repetition_rate", "silence_rate", "reply_length"):
            assert f"check/{c}" in r
    stats = json.loads((run / "stats.json").read_text())["train"]
    assert stats["environment"].startswith("sandbox:train:")
    assert not (run / "pairs.jsonl.gz").exists()  # online: no pairs were made
    res = json.loads((out / "demo_results.json").read_text())
    assert res["loss"].startswith("grpo (token credit")
    assert res["validation_history"], "rollout validation never ran"
    for m in METRICS:
        assert res["table"][m]["before"]["n"] > 0
    assert len(res["rounds"][0]["online_steps"]) == 10
    printed = capsys.readouterr().out
    assert "Before/after on held-out scenarios" in printed
    assert "Online training rollouts per step" in printed

    # (b) replay the logged users of the same run: a new environment, so the stage trains again
    assert main(["train", str(run), "--config", str(REPO_CONFIGS / "sandbox_quick.yaml"),
                 "--set", "train.method=grpo", "--set", "train.max_steps=2",
                 "--set", "train.val.every=0", "--set", "train.grpo.prompts=2",
                 "--set", "train.grpo.group_size=2",
                 "--set", "train.grpo.replay.max_conversations=4"]) == 0
    stats = json.loads((run / "stats.json").read_text())["train"]
    assert stats["environment"] == "replay:run"
    assert stats["user_streams"] == 4
    rows = _metrics(run / "train")
    assert len(rows) == 2 and all("reward/content" in r for r in rows)
    assert (run / "train" / "final" / "model.safetensors").is_file()
