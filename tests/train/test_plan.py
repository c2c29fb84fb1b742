"""The dry-run memory plan against measured tensor memory of a real training step on CPU.

Measured with `PeakTensorMemory` (every storage torch allocates inside the step, freed by weakref
callbacks) on the second step, when AdamW's state already exists. Weights and optimizer state are
exact counts and must match to the byte. Gradients + activations (what a step adds on top) must be
within [0.8, 1.25] of the measured peak: the estimate counts what autograd saves per layer from the
model's shapes; it does not model temporaries that exist only inside an op or the order of frees at
the peak, which moved the ratio between 0.87 and 1.06 over 11 shapes of the tiny and sandbox presets
(full, LoRA, naive and shared-context scoring, gradient checkpointing).
"""

from __future__ import annotations

import pytest
import torch

from duplexalign.cli.main import main
from duplexalign.models.lora import freeze_for_text_only, param_groups
from duplexalign.models.presets import build_model, get_preset
from duplexalign.train.logprobs import ScoreConfig, score_pairs
from duplexalign.train.plan import StepShape, plan_memory

from .helpers import make_run_streams
from .memtrack import PeakTensorMemory


def _measure(preset, b: int, t: int, w: int, share: bool) -> tuple[int, int]:
    """(bytes of parameters + AdamW state before the step, peak bytes added during the step)."""
    model = build_model(preset)
    freeze_for_text_only(model)
    opt = torch.optim.AdamW(param_groups(model, 1e-3), betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    chosen = torch.randint(0, preset.card, (b, preset.num_rows, t), generator=g)
    rejected = chosen.clone()
    rejected[:, 0, t - w:] = 3
    window = torch.zeros(b, t, dtype=torch.bool)
    window[:, t - w:] = True

    def step() -> None:
        s = score_pairs(model, chosen, rejected, window, t - w, ScoreConfig(share_context=share))
        torch.nn.functional.logsigmoid(s.logps[:b] - s.logps[b:]).sum().neg().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    state = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
    before = sum(p.numel() * p.element_size() for p in model.parameters()) + \
        sum(v.numel() * v.element_size() for v in state)
    with PeakTensorMemory() as mem:
        step()
    return before, mem.peak


CASES = {
    "tiny_shared": ("tiny", {}, 4, 200, 22, True),
    "tiny_naive": ("tiny", {}, 8, 120, 14, False),
    "sandbox_shared": ("sandbox", {}, 4, 400, 44, True),
    "sandbox_lora_shared": ("sandbox", {"lora": {"enabled": True, "rank": 8}}, 4, 300, 34, True),
    "sandbox_checkpointing": ("sandbox", {"gradient_checkpointing": True}, 4, 160, 18, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_measured_memory(case):
    name, updates, b, t, w, share = CASES[case]
    preset = get_preset(name, **updates)
    plan = plan_memory(preset, StepShape(b, t - w, w), device="cpu", bf16=False,
                       share_context=share)
    before, added = _measure(preset, b, t, w, share)
    assert plan.weights + plan.optimizer == before
    ratio = (plan.gradients + plan.activations) / added
    assert 0.8 <= ratio <= 1.25, f"{case}: estimate/measured = {ratio:.2f}"


def test_dry_run_prints_the_7b_plan(tmp_path, capsys):
    rc = main(["train", str(tmp_path / "run"), "--dry-run", "--set", "train.model.preset=moshi_7b",
               "--set", "train.device=cuda", "--set", "train.distributed=fsdp",
               "--world-size", "8", "--set", "train.micro_batch_size=1"])
    out = capsys.readouterr().out
    assert rc == 0 and "7,964,979,200 total, 277,250,048 trainable" in out  # LoRA rank 128
    # bf16 shard 7,964,979,200 / 8 x 2 B = 1,991,244,800 B, plus two gathered transformer layers of
    # 214,048,768 parameters (with LoRA) x 2 B = 856,195,072 B: 2,847,439,872 B = 2.65 GiB
    assert "| weights | 2.65 |" in out
    assert "FSDP over 8" in out and not (tmp_path / "run").exists()


def test_moshi_7b_config_loads_and_plans(tmp_path, capsys):
    from pathlib import Path

    from duplexalign.config import load_section
    from duplexalign.evaluate.stage import EvaluateConfig
    from duplexalign.streams.stage import StreamsConfig
    from duplexalign.train.stage import TrainConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "moshi_7b.yaml"
    train = load_section(TrainConfig, "train", path, [f"train.model.weights={tmp_path}"])
    p = train.preset()
    assert (p.name, p.dim, p.num_layers, p.lora.rank, p.dtype, p.weights) == (
        "moshi_7b", 4096, 32, 128, "bfloat16", tmp_path)
    assert load_section(EvaluateConfig, "evaluate", path).codec.name == "mimi"
    assert load_section(StreamsConfig, "streams", path).codec == "mimi"
    assert main(["train", str(tmp_path / "run"), "--config", str(path), "--dry-run"]) == 0
    assert "7,964,979,200 total" in capsys.readouterr().out
    # training without the released folder is one clear line
    make_run_streams(tmp_path / "run", n_pairs=2)
    assert main(["train", str(tmp_path / "run"), "--config", str(path)]) == 2
    assert "'moshi_7b' needs local weights: set model.weights" in capsys.readouterr().err
