"""`duplexalign export`: both forms load back through moshi's own loaders with the trained logits."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from models.released_helpers import write_released  # tests/models
from safetensors.torch import load_file

from duplexalign.cli.main import main
from duplexalign.models.forward import text_logits
from duplexalign.models.presets import load_model

from .helpers import make_run_streams


def _codes() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 64, (2, 9, 20), generator=g)


def _moshi_lm(weights: Path, config: Path, lora: Path | None = None, fuse: bool = False):
    """Load exactly as `moshi.server --moshi-weight --lora-weight --config-path` does."""
    from moshi.models.loaders import CheckpointInfo

    info = CheckpointInfo.from_hf_repo("nowhere/offline", moshi_weights=weights,
                                       mimi_weights=Path("unused-mimi.safetensors"),
                                       tokenizer=Path("unused.model"), config_path=config,
                                       lora_weights=lora)
    return info.get_moshi(device="cpu", dtype=torch.float32, fuse_lora=fuse)


def test_export_lora_run_from_released_folder(tmp_path, capsys):
    rel = tmp_path / "released"
    base = write_released(rel, "tiny")
    run = tmp_path / "run"
    make_run_streams(run, n_pairs=8)
    assert main(["train", str(run), "--set", "train.model.preset=tiny",
                 "--set", f"train.model.weights={rel}", "--set", "train.model.lora.enabled=true",
                 "--set", "train.model.lora.rank=4", "--set", "train.model.lora.targets=[temporal]",
                 "--set", "train.max_steps=3", "--set", "train.batch_size=4",
                 "--set", "train.lr=0.01"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    info = json.loads(capsys.readouterr().out)
    exp = tmp_path / "exp"
    assert info["lora"]["weights"] == str(rel / "model.safetensors")  # adapters on the release
    assert info["lora"]["rank"] == 4 and not (exp / "lora" / "base.safetensors").exists()

    trained = load_model(run / "train" / "final")
    codes = _codes()
    want = text_logits(trained, codes)
    assert not torch.allclose(want, text_logits(base, codes), atol=1e-4)  # training moved it
    merged = _moshi_lm(exp / "merged" / "model.safetensors", exp / "merged" / "config.json")
    assert torch.allclose(text_logits(merged, codes), want, atol=1e-5)
    for fuse in (False, True):
        adapted = _moshi_lm(rel / "model.safetensors", exp / "lora" / "config.json",
                            exp / "lora" / "lora.safetensors", fuse=fuse)
        assert torch.allclose(text_logits(adapted, codes), want, atol=1e-5), fuse
    # untargeted linears (depth transformer, heads) get exact-zero adapters
    adapters = load_file(str(exp / "lora" / "lora.safetensors"))
    assert not adapters["depformer_in.0.lora_B.weight"].any()
    assert adapters["transformer.layers.0.gating.linear_in.lora_B.weight"].any()


def test_export_full_finetune_and_latest_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    make_run_streams(run, n_pairs=8)
    assert main(["train", str(run), "--set", "train.max_steps=2", "--set", "train.batch_size=4",
                 "--set", "train.checkpoint_every=2"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "a")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "lora" not in info and not (tmp_path / "a" / "lora").exists()
    codes = _codes()
    want = text_logits(load_model(run / "train" / "final"), codes)
    merged = _moshi_lm(tmp_path / "a" / "merged" / "model.safetensors",
                       tmp_path / "a" / "merged" / "config.json")
    assert torch.allclose(text_logits(merged, codes), want, atol=1e-6)
    # the resumable checkpoint of the last step, rebuilt from train/config.json, is the same model
    assert main(["export", str(run), "--out", str(tmp_path / "b"), "--which", "latest"]) == 0
    a = load_file(str(tmp_path / "a" / "merged" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "merged" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
