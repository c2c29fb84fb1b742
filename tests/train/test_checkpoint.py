"""Checkpoints hold resume state as safetensors + JSON: exact round trip, no pickle anywhere."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.models.lora import param_groups
from duplexalign.models.presets import build_model
from duplexalign.train import checkpoint

REPO = Path(__file__).resolve().parents[2]


def _setup(seed: int = 0):
    model = build_model("tiny")
    opt = torch.optim.AdamW(param_groups(model, 1e-3, None, 0.01), betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    return model, opt, sched


def _step(model, opt, sched) -> None:
    codes = torch.randint(0, 64, (2, 9, 12))  # [B, R, T] with the tiny preset's 1 + 2*4 rows
    out = model(codes)
    loss = torch.where(out.text_mask[..., None], out.text_logits, 0.0).float().pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def _same(a, b, where="") -> None:
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), where  # NaN == NaN here


def test_resume_state_round_trips_exactly_and_training_continues_identically(tmp_path):
    torch.manual_seed(0)
    model, opt, sched = _setup()
    for _ in range(2):
        _step(model, opt, sched)
    extra = {"optim": opt.state_dict(), "sched": sched.state_dict(),
             "rng": torch.get_rng_state()}
    state = {"step": 2, "data": {"epoch": 1, "consumed": 3}, "best": float("-inf"),
             "since_best": 0}
    ckpt = checkpoint.save(tmp_path, 2, model, extra, state)
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "resume.json", "resume.safetensors", "state.json", "trainable.safetensors"]
    assert checkpoint.latest(tmp_path) == ckpt

    model2, opt2, sched2 = _setup()
    extra2, state2 = checkpoint.load(ckpt, model2)
    _same(extra, extra2, "extra")  # every tensor, int key, tuple (betas) and scalar
    assert state2 == state
    opt2.load_state_dict(extra2["optim"])
    sched2.load_state_dict(extra2["sched"])
    torch.set_rng_state(extra2["rng"])
    _same(opt.state_dict(), opt2.state_dict(), "optim")
    # one more step from the original and from the resumed copy: bit-identical parameters
    rng = torch.get_rng_state()
    _step(model2, opt2, sched2)
    torch.set_rng_state(rng)
    _step(model, opt, sched)
    for (n, p), (_, q) in zip(model.named_parameters(), model2.named_parameters(), strict=True):
        assert torch.equal(p, q), n


def test_latest_pointer_must_be_a_folder_name(tmp_path):
    (tmp_path / "step-0000001").mkdir()
    (tmp_path / "step-0000001" / "state.json").write_text("{}")
    for bad in ("/etc", "../step-0000001", "step-1/../../x", str(tmp_path / "step-0000001")):
        (tmp_path / "latest").write_text(bad + "\n")
        with pytest.raises(ConfigError, match="checkpoint folder name"):
            checkpoint.latest(tmp_path)
    (tmp_path / "latest").write_text("step-0000001\n")
    assert checkpoint.latest(tmp_path) == tmp_path / "step-0000001"


class _Planted:
    def __reduce__(self):  # unpickling this would create a file: proof that code ran
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pickle_is_never_loaded(tmp_path):
    model = build_model("tiny")
    ckpt = checkpoint.save(tmp_path, 1, model, {"rng": torch.get_rng_state()}, {"step": 1})
    for name in ("resume.json", "resume.safetensors"):
        (ckpt / name).unlink()
    planted = _Planted()
    planted.marker = str(tmp_path / "pwned")
    (ckpt / "optim.pt").write_bytes(pickle.dumps(planted))
    with pytest.raises(ConfigError, match="optim.pt is a pickle"):
        checkpoint.load(ckpt, model)
    assert not (tmp_path / "pwned").exists()


def test_no_source_file_unpickles():
    """Never `torch.load(weights_only=False)` (or pickle) anywhere in the package or benches."""
    offenders = []
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "bench").rglob("*.py")]:
        text = path.read_text()
        if re.search(r"weights_only\s*=\s*False|\bimport pickle\b|\bpickle\.loads?\(", text):
            offenders.append(str(path))
        for call in re.finditer(r"torch\.load\(", text):
            args = text[call.end():call.end() + 300].split(")")[0]
            if not re.search(r"weights_only\s*=\s*True", args):
                offenders.append(f"{path}: torch.load without weights_only=True")
    assert offenders == []
