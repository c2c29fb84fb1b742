"""`bench/gpu.py` runs end to end on CPU with the tiny preset (it only ever runs for real on a lent
GPU, so this keeps it from rotting); the figures it prints are not asserted."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"


def test_gpu_bench_runs_on_cpu_tiny(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--preset", "tiny", "--device", "cpu",
                                      "--reps", "1", "--rollout-frames", "6"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    for line in ("(a) DPO-LN step: ours", "(b) ", "(c) peak memory", "(d) LMGen batch  1",
                 "(d) LMGen batch 32"):
        assert line in out
