"""Trainer benchmarks, ratios measured side by side in one run (tiny moshi preset by default).

    NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 .venv/bin/python bench/train.py [--preset tiny]

(a) one DPO step of our path (text-only forward, context computed once per pair, cached reference)
    vs the naive path (full forward of chosen and of rejected, live reference copy), context:reply 8:1;
(b) achieved FLOP/s of our step vs a dense matmul in the same run;
(c) peak RSS of a child process streaming a whole epoch of a 150k-pair index vs a 1k-pair index.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")
torch.set_num_threads(1)

from duplexalign.models.forward import token_logprobs  # noqa: E402
from duplexalign.models.presets import build_model, get_preset  # noqa: E402
from duplexalign.streams.shards import PairIndex, ShardWriter  # noqa: E402
from duplexalign.train.logprobs import ScoreConfig, score_pairs  # noqa: E402
from duplexalign.train.losses import LOSSES, LossParams, PreferenceLogps  # noqa: E402


def _pair_batch(b: int, ctx: int, win: int, rows: int, card: int):
    g = torch.Generator().manual_seed(0)
    chosen = torch.randint(0, card, (b, rows, ctx + win), generator=g)
    rejected = chosen.clone()
    k = (rows - 1) // 2
    rejected[:, : 1 + k, ctx:] = torch.randint(0, card, (b, 1 + k, win), generator=g)
    window = torch.zeros(b, ctx + win, dtype=torch.bool)
    window[:, ctx:] = True
    return chosen, rejected, window


def _time(fn, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_step(preset: str, b: int, ctx: int, win: int, reps: int) -> dict:
    model = build_model(preset)
    p = get_preset(preset)
    chosen, rejected, window = _pair_batch(b, ctx, win, p.num_rows, min(p.card, p.text_card))
    params = LossParams(beta=0.3)
    ref_sums = torch.zeros(2 * b)  # cached reference: read from disk once per run

    def ours():
        s = score_pairs(model, chosen, rejected, window, ctx, ScoreConfig())
        lp = PreferenceLogps(s.logps[:b], s.logps[b:], ref_sums[:b], ref_sums[b:],
                             s.lengths[:b], s.lengths[b:])
        LOSSES.get("dpo_ln")(lp, params).loss.mean().backward()
        model.zero_grad(set_to_none=True)

    reference = copy.deepcopy(model).requires_grad_(False)

    def window_logp(m, codes):
        out = m(codes)  # full forward: temporal + depth transformer
        lp = token_logprobs(out.text_logits[:, 0], codes[:, 0])
        return (lp * window).sum(1)

    def naive():
        pw, pl = window_logp(model, chosen), window_logp(model, rejected)
        with torch.no_grad():
            rw, rl = window_logp(reference, chosen), window_logp(reference, rejected)
        n = window.sum(1).float()
        lp = PreferenceLogps(pw, pl, rw, rl, n, n)
        LOSSES.get("dpo_ln")(lp, params).loss.mean().backward()
        model.zero_grad(set_to_none=True)

    t_ours, t_naive = _time(ours, reps), _time(naive, reps)
    # FLOPs of our step: temporal transformer + text head, fwd + bwd = 3 x forward
    dense = sum(q.numel() for n, q in model.named_parameters()
                if n.startswith(("transformer.", "text_linear")))
    tokens = b * ctx + 2 * b * win
    attn = 2 * 2 * p.dim * p.num_layers * (b * ctx * ctx / 2 + 2 * b * win * (ctx + win / 2))
    flops = 3 * (2 * dense * tokens + attn)
    n = 256
    x, y = torch.randn(n, n), torch.randn(n, n)
    t_mm = _time(lambda: x @ y, max(reps, 20))
    return {"t_ours": t_ours, "t_naive": t_naive, "ratio": t_ours / t_naive,
            "flops_ours": flops / t_ours, "flops_matmul": 2 * n**3 / t_mm,
            "mfu": (flops / t_ours) / (2 * n**3 / t_mm)}


def write_index(out: Path, n: int) -> None:
    """n pairs over n // 10 tiny conversations (K=4, 24 frames)."""
    g = torch.Generator().manual_seed(0)
    w = ShardWriter(out, max_bytes=64 << 20)
    for c in range(max(1, n // 10)):
        codes = torch.randint(0, 64, (9, 24), generator=g)
        w.add_context(f"c{c}", codes)
        for j in range(10):
            e = PairIndex(id=f"p{c}-{j}", conversation_id=f"c{c}", shard="",
                          context_start_frame=0, window_start_frame=16, window_end_frame=24,
                          category="content", strategy="bench", num_codebooks=4)
            w.add_pair(e, codes[:5, 16:], codes[:5, 16:])
    w.close()


def child_rss(streams: Path) -> float:
    """Peak RSS (MiB) of a child that streams one epoch and loads every 100th batch."""
    code = (
        "import resource, sys, torch\n"
        "from duplexalign.train.data import GlobalBatches, collate\n"
        "from duplexalign.streams.shards import ShardReader\n"
        "d = sys.argv[1]; gb = GlobalBatches(d, 16); r = ShardReader(d); i = 0\n"
        "while gb.epoch == 0:\n"
        "    items = gb.next(); i += 1\n"
        "    if i % 100 == 1: collate(r, items)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(streams)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--context", type=int, default=192)
    ap.add_argument("--window", type=int, default=24)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-rss", action="store_true")
    a = ap.parse_args()
    r = bench_step(a.preset, a.batch, a.context, a.window, a.reps)
    print(f"preset={a.preset} B={a.batch} context={a.context} window={a.window} (8:1), 1 thread")
    print(f"(a) DPO step: ours {r['t_ours'] * 1e3:.1f} ms, naive {r['t_naive'] * 1e3:.1f} ms, "
          f"ratio {r['ratio']:.3f}x (goal <= 0.35x)")
    print(f"(b) achieved {r['flops_ours'] / 1e9:.2f} GFLOP/s vs dense matmul "
          f"{r['flops_matmul'] / 1e9:.2f} GFLOP/s: {100 * r['mfu']:.1f} % (goal >= 30 %)")
    if not a.skip_rss:
        with tempfile.TemporaryDirectory() as tmp:
            small, big = Path(tmp) / "s1k", Path(tmp) / "s150k"
            write_index(small, 1000)
            write_index(big, 150_000)
            rs, rb = child_rss(small), child_rss(big)
        print(f"(c) peak RSS streaming one epoch: 1k pairs {rs:.0f} MiB, 150k pairs {rb:.0f} MiB, "
              f"ratio {rb / rs:.3f}x (goal <= 1.1x)")


if __name__ == "__main__":
    main()
