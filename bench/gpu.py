"""The one GPU benchmark: Moshi-7B-shaped training step and rollouts, measured side by side in one run.

    NO_TORCH_COMPILE=1 python bench/gpu.py                         # 7B shape, bf16, LoRA r128, cuda
    NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 python bench/gpu.py --preset tiny --device cpu   # CPU check

On random weights of the preset's shape (no download; `moshi_7b` = 7.69 B parameters in bf16 with
LoRA rank 128 on the temporal transformer and text head), it prints:
(a) one DPO-LN step (forward, backward, AdamW) of the trainer's path (text-only forward, context
    shared by chosen and rejected, cached reference) against the naive path (full forward of chosen
    and of rejected plus a live LoRA-off reference forward of both), at context:reply 8:1;
(b) tokens/s and MFU: the step's FLOPs (3 x forward of the temporal transformer + text head, i.e.
    the 6N rule, plus attention) per second over a same-run dense bf16 matmul's FLOP/s (the model's
    compute dtype on CPU);
(c) peak memory of each path (CUDA allocator peak; on CPU the process's peak RSS) next to the
    `train --dry-run` estimate for the same shape;
(d) the LMGen rollout real-time factor at batch 1 and 32 (audio seconds per wall second of each
    stream; above 1 is faster than real time).
Budget: under 8 minutes on one H100/H200-class GPU (model build, 2 + 3 timed steps per path, two
rollouts of 4 s). Figures go in docs/benchmarks.md with the command line.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import torch  # noqa: E402

from duplexalign.evaluate.rollout import SamplingConfig, generate  # noqa: E402
from duplexalign.models import device as devices  # noqa: E402
from duplexalign.models.forward import token_logprobs  # noqa: E402
from duplexalign.models.lora import freeze_for_text_only, lora_scale, param_groups  # noqa: E402
from duplexalign.models.presets import build_model, get_preset  # noqa: E402
from duplexalign.timebase import FRAME_RATE  # noqa: E402
from duplexalign.train.logprobs import ScoreConfig, score_pairs  # noqa: E402
from duplexalign.train.losses import LOSSES, LossParams, PreferenceLogps  # noqa: E402
from duplexalign.train.plan import StepShape, plan_memory  # noqa: E402

SHAPES = {"moshi_7b": (2, 800, 100, 50), "sandbox": (2, 160, 20, 25), "tiny": (2, 80, 10, 25)}
"""preset -> (pairs per step, context frames, window frames, rollout frames)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device) -> float:
    """Peak bytes since the last reset (CUDA), or the process's peak RSS (CPU)."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _time(fn, device: torch.device, reps: int) -> float:
    fn()
    fn()
    ts = []
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _batch(b: int, ctx: int, win: int, rows: int, card: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    chosen = torch.randint(0, card, (b, rows, ctx + win), generator=g)
    rejected = chosen.clone()
    k = (rows - 1) // 2
    rejected[:, : 1 + k, ctx:] = torch.randint(0, card, (b, 1 + k, win), generator=g)
    window = torch.zeros(b, ctx + win, dtype=torch.bool)
    window[:, ctx:] = True
    return chosen.to(device), rejected.to(device), window.to(device)


def bench_steps(model, preset, device, bf16: bool, b: int, ctx: int, win: int, reps: int) -> dict:
    """Step times and peak memory of the trainer's path and of the naive path."""
    chosen, rejected, window = _batch(b, ctx, win, preset.num_rows,
                                      min(preset.card, preset.text_card), device)
    params = LossParams(beta=0.1)
    opt = torch.optim.AdamW(param_groups(model, 1e-6), betas=(0.9, 0.95))
    ref = torch.zeros(2 * b, device=device)  # cached reference: one read per run

    def finish(lp: PreferenceLogps) -> None:
        LOSSES.get("dpo_ln")(lp, params).loss.mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def ours() -> None:
        with devices.autocast(device, bf16):
            s = score_pairs(model, chosen, rejected, window, ctx, ScoreConfig())
        finish(PreferenceLogps(s.logps[:b], s.logps[b:], ref[:b], ref[b:], s.lengths[:b],
                               s.lengths[b:]))

    def window_logp(codes: torch.Tensor) -> torch.Tensor:
        out = model(codes)  # full forward: temporal + depth transformer
        return (token_logprobs(out.text_logits[:, 0], codes[:, 0]) * window).sum(1)

    def naive() -> None:
        with devices.autocast(device, bf16):
            pw, pl = window_logp(chosen), window_logp(rejected)
            with torch.no_grad(), lora_scale(model, 0.0):
                rw, rl = window_logp(chosen), window_logp(rejected)
        n = window.sum(1).float()
        finish(PreferenceLogps(pw, pl, rw, rl, n, n))

    out = {}
    for name, fn in (("ours", ours), ("naive", naive)):
        _reset_peak(device)
        out[f"t_{name}"] = _time(fn, device, reps)
        out[f"peak_{name}"] = _peak(device)
    return out


def step_flops(model, preset, b: int, ctx: int, win: int) -> float:
    """FLOPs of one step of our path: 3 x forward (temporal transformer + text head) + attention."""
    dense = sum(q.numel() for n, q in model.named_parameters()
                if n.startswith(("transformer.", "text_linear")) and ".lora_" not in n)
    tokens = b * ctx + 2 * b * win
    attn = 2 * 2 * preset.dim * preset.num_layers * (b * ctx * ctx / 2
                                                     + 2 * b * win * (ctx + win / 2))
    return 3 * (2 * dense * tokens + attn)


def matmul_flops(device: torch.device, dtype: torch.dtype, reps: int = 10) -> float:
    """FLOP/s of a dense square matmul in `dtype` on `device` (the MFU denominator)."""
    n = 8192 if device.type == "cuda" else 512
    x = torch.randn(n, n, device=device, dtype=dtype)
    y = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _time(lambda: x @ y, device, reps)


def rollout_rtf(model, device: torch.device, batch: int, frames: int) -> tuple[float, float]:
    """(audio seconds per wall second of each stream, ms per LMGen step)."""
    k = model.num_codebooks - model.dep_q - 1
    user = torch.randint(0, model.card, (batch, k, frames), device=device)
    generate(model, user[:, :, :4], SamplingConfig(), 0)  # warm-up (CUDA graphs on GPU)
    _sync(device)
    t = time.perf_counter()
    generate(model, user, SamplingConfig(), 1)
    _sync(device)
    wall = time.perf_counter() - t
    return frames / FRAME_RATE / wall, 1000 * wall / (frames + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="moshi_7b", choices=sorted(SHAPES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--lora-rank", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rollout-frames", type=int, default=None, help="frames per rollout")
    a = ap.parse_args()
    t0 = time.perf_counter()
    device = devices.resolve_device(a.device, "--device")
    bf16 = devices.use_bf16(device, None)
    b, ctx, win, frames = SHAPES[a.preset]
    frames = a.rollout_frames or frames
    base = get_preset(a.preset)
    rank = min(a.lora_rank, base.dim)
    preset = get_preset(a.preset, weights=None, requires_weights=False,
                        lora={**base.lora.model_dump(), "enabled": True, "rank": rank})
    model = build_model(preset, device=device)
    freeze_for_text_only(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"preset={a.preset} device={device} dtype={preset.dtype} autocast_bf16={bf16} "
          f"LoRA r{rank} params {total:,} ({trainable:,} trainable); "
          f"B={b} context={ctx} window={win} (8:1); built in {time.perf_counter() - t0:.0f} s")

    r = bench_steps(model, preset, device, bf16, b, ctx, win, a.reps)
    print(f"(a) DPO-LN step: ours {r['t_ours'] * 1e3:.1f} ms, naive {r['t_naive'] * 1e3:.1f} ms, "
          f"ratio {r['t_ours'] / r['t_naive']:.3f}x")
    flops = step_flops(model, preset, b, ctx, win)
    mm_dtype = torch.bfloat16 if device.type == "cuda" else getattr(torch, preset.dtype)
    peak_mm = matmul_flops(device, mm_dtype)
    tokens = b * ctx + 2 * b * win
    print(f"(b) {tokens / r['t_ours']:.0f} temporal tokens/s ({b * (ctx + win) / r['t_ours']:.0f} "
          f"pair frames/s); {flops / r['t_ours'] / 1e9:.1f} GFLOP/s vs {str(mm_dtype)[6:]} "
          f"matmul {peak_mm / 1e9:.1f} GFLOP/s: MFU {100 * flops / r['t_ours'] / peak_mm:.1f} %")
    plan = plan_memory(preset, StepShape(b, ctx, win), device=device.type, bf16=bf16)
    kind = "allocator peak" if device.type == "cuda" else "process peak RSS"
    print(f"(c) peak memory ({kind}): ours {r['peak_ours'] / 2**30:.2f} GiB, naive "
          f"{r['peak_naive'] / 2**30:.2f} GiB; dry-run estimate of ours {plan.total / 2**30:.3f} GiB")
    for batch in (1, 32):
        rtf, ms = rollout_rtf(model, device, batch, frames)
        print(f"(d) LMGen batch {batch:>2}: {rtf:.2f}x real time per stream ({ms:.1f} ms/step, "
              f"80 ms is real time)")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
