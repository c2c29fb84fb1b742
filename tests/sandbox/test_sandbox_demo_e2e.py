"""End-to-end: `duplexalign demo --quick` runs the whole loop on the committed sandbox assets.

Asserts that deployment logs were ingested, the loop produced preference pairs and a trained
checkpoint, and that the before/after table on held-out scenarios was computed.
"""

from __future__ import annotations

import json

import pytest

from duplexalign.cli.main import main
from duplexalign.manifest import iter_dicts
from duplexalign.sandbox.build import ASSETS_DIR
from duplexalign.sandbox.table import METRICS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
# on 24 held-out conversations a model may give no reply to a harmful or benign request
MAY_BE_EMPTY = ("unsafe_compliance", "compliance_when_replying", "selectivity", "benign_refusal")


def test_demo_quick_runs_the_loop(tmp_path, capsys):
    # The assets are committed: their absence is a packaging bug, not a reason to skip.
    assert (ASSETS_DIR / "instruct" / "model.safetensors").exists(), "sandbox assets missing"
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    run = out / "run"
    # Every one of the 32 deployment logs is either ingested or quarantined with a reason.
    kept = sum(1 for _ in iter_dicts(run / "conversations.jsonl.gz"))
    quarantined = list(iter_dicts(run / "quarantine.jsonl.gz"))
    assert kept + len(quarantined) == 32 and kept >= 24
    assert all(q.get("reason") for q in quarantined)
    pairs = list(iter_dicts(run / "pairs.jsonl.gz"))
    assert pairs, "the loop produced no preference pairs"
    assert (run / "train" / "final" / "model.safetensors").is_file()
    res = json.loads((out / "demo_results.json").read_text())
    for m in METRICS:
        assert res["table"][m]["before"]["n"] > 0
        assert res["table"][m]["after"]["value"] is not None or m in MAY_BE_EMPTY
    assert set(res["goals"]) >= {"unresponsiveness_halved", "unsafe_down_20_points"}
    assert res["validation_history"], "rollout validation never ran"
    assert "Before/after on held-out scenarios" in capsys.readouterr().out
    # `duplexalign review` serves the quick demo's run: its list and a conversation with issues
    from fastapi.testclient import TestClient

    from duplexalign.review.app import create_app

    client = TestClient(create_app(run, reviewer="ci"), base_url="http://127.0.0.1:8765")
    assert f"{kept} conversations" in client.get("/").text
    first = next(iter_dicts(run / "annotations.jsonl.gz"))["conversation_id"]
    page = client.get("/conversation", params={"id": first}).text
    assert 'data-testid="issue"' in page and 'class="lane model"' in page
