"""The demo report's side-by-side of recipes: one shared baseline, each recipe's after and delta."""

from __future__ import annotations

import argparse
import json

import pytest

from duplexalign.cli.demo import demo_overrides
from duplexalign.errors import ConfigError
from duplexalign.sandbox.demo import compared_tables
from duplexalign.sandbox.table import METRICS, side_by_side


def _e(v, lo, hi):
    return {"value": v, "low": lo, "high": hi}


def _table(after: float, before: float = 0.2) -> dict:
    return {m: {"before": _e(before, before - 0.05, before + 0.05), "after": _e(after, after, after),
                "delta": _e(after - before, after - before - 0.01, after - before + 0.01)}
            for m in METRICS}


def test_side_by_side_shares_the_baseline_and_shows_each_after_and_delta():
    md = side_by_side({"grpo": _table(0.1), "dpo": _table(0.3)})
    row = next(line for line in md.splitlines() if line.startswith("| unresponsiveness rate"))
    # before 20.0 % [15.0, 25.0]; grpo 10.0 (-10.0 [-11.0, -9.0]); dpo 30.0 (10.0 [9.0, 11.0])
    assert row == ("| unresponsiveness rate (%) | 20.0 [15.0, 25.0] | 10.0 (-10.0 [-11.0, -9.0]) "
                   "| 30.0 (10.0 [9.0, 11.0]) |")
    assert md.splitlines()[0] == "| metric | before | grpo: after (delta) | dpo: after (delta) |"


def test_side_by_side_refuses_another_baseline_and_tolerates_missing_rows():
    with pytest.raises(ValueError, match="another baseline"):
        side_by_side({"a": _table(0.1), "b": _table(0.1, before=0.25)})
    old = _table(0.3)
    del old["pause_takeover_fdb"]  # a run from before that row existed
    md = side_by_side({"new": _table(0.1), "old": old})
    assert "| n/a |" in next(line for line in md.splitlines() if "FDB pause" in line)


def test_compare_with_reads_other_demo_folders(tmp_path):
    (tmp_path / "dpo").mkdir()
    (tmp_path / "dpo" / "demo_results.json").write_text(
        json.dumps({"loss": "dpo_ln", "table": _table(0.3)}))
    assert list(compared_tables([str(tmp_path / "dpo")])) == ["dpo (dpo_ln)"]
    with pytest.raises(ConfigError, match="no demo_results.json"):
        compared_tables([str(tmp_path / "missing")])
    args = argparse.Namespace(overrides=[], judge=None, method=None, grpo_users=None, rounds=None,
                              reference=None, compare_with=["runs/a", "runs/b"])
    assert 'sandbox.compare_with=["runs/a", "runs/b"]' in demo_overrides(args)
