"""Real-time factor of streaming rollouts at batch 1 and batch 16 on a tiny preset.

Run: NO_TORCH_COMPILE=1 .venv/bin/python bench/rollout.py [--preset tiny] [--seconds 10] [--threads 1]

Rolls random user codes out with `evaluate.rollout.generate` (moshi's LMGen, first frame fed twice)
and prints audio seconds produced per wall second at each batch size, side by side in one run, and
their ratio. A real-time factor above 1 means faster than real time. Figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import torch  # noqa: E402

from duplexalign.evaluate.rollout import SamplingConfig, generate  # noqa: E402
from duplexalign.models.presets import build_model  # noqa: E402
from duplexalign.timebase import FRAME_RATE  # noqa: E402


def rtf(model: torch.nn.Module, batch: int, frames: int, repeats: int) -> tuple[float, float]:
    """(audio seconds per wall second summed over the batch, wall seconds per rollout call)."""
    k = model.num_codebooks - model.dep_q - 1
    user = torch.randint(0, model.card, (batch, k, frames))
    generate(model, user[:, :, :8], SamplingConfig(), 0)  # warm-up
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        generate(model, user, SamplingConfig(), r)
        best = min(best, time.perf_counter() - t)
    return batch * frames / FRAME_RATE / best, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seconds", type=float, default=10.0, help="audio seconds per rollout")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(args.preset, device=args.device).eval()
    frames = round(args.seconds * FRAME_RATE)
    print(f"preset={args.preset} device={args.device} threads={args.threads} "
          f"rollout={args.seconds:.0f}s ({frames} frames) best of {args.repeats}")
    results = {}
    for b in (1, 16):
        results[b] = rtf(model, b, frames, args.repeats)
        print(f"batch {b:>2}: {results[b][0]:8.1f} audio s / wall s  "
              f"({results[b][1]:.2f} s per call, {1000 * results[b][1] / (frames + 1):.1f} ms/step)")
    print(f"ratio batch16/batch1: {results[16][0] / results[1][0]:.1f}x")


if __name__ == "__main__":
    main()
