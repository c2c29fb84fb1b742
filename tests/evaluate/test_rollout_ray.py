"""The evaluation rollouts on a two-node Ray cluster (127.0.0.1): each worker loads the tiny real
checkpoint once and rolls out whole batches with their own seeds, so every sample, result and wav
equals the local run's byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from duplexalign.engine import EngineConfig
from duplexalign.evaluate.stage import EvaluateConfig, run

pytest.importorskip("ray")


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in ("stats.json", "provenance.json")}


def test_rollouts_on_ray_equal_local(ray_cluster, eval_assets, shared_data, tmp_path):
    cfg = EvaluateConfig(checkpoint=eval_assets["checkpoint"], tasks="llama_questions,timing",
                         limit=3, data_dir=shared_data, decode_audio=False, resamples=20,
                         answer_seconds=3.2, codec={"path": str(eval_assets["codec"])},
                         sampling={"batch_size": 2})
    run(cfg, tmp_path / "local")
    remote = cfg.model_copy(update={"engine": EngineConfig(kind="ray", address=ray_cluster.address,
                                                           workers=2)})
    stats = run(remote, tmp_path / "ray")
    assert stats.counts == {"samples/llama_questions": 3, "samples/timing": 3}
    a, b = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert len([k for k in a if k.endswith(".wav")]) == 6
    assert sorted(a) == sorted(b) and [k for k in a if a[k] != b[k]] == []
