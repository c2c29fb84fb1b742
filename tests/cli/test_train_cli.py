"""End to end: `duplexalign train RUN` on shards written by ShardWriter."""

from __future__ import annotations

import json

from train.helpers import make_run_streams

from duplexalign.cli.main import main
from duplexalign.runs import RunDir


def test_cli_train_dpo_ln(tmp_path, capsys):
    make_run_streams(tmp_path / "run", n_pairs=8)
    RunDir(tmp_path / "run").mark_done("streams")
    rc = main(["train", str(tmp_path / "run"), "--set", "train.max_steps=3",
               "--set", "train.batch_size=4", "--set", "train.loss={dpo_ln: 1.0, sft: 0.5}"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["counts"]["steps"] == 3
    assert (tmp_path / "run" / "train" / "final" / "model.safetensors").exists()
    assert (tmp_path / "run" / ".done" / "train").exists()
    assert "train" in json.loads((tmp_path / "run" / "stats.json").read_text())


def test_cli_rerun_is_noop(tmp_path, capsys):
    make_run_streams(tmp_path / "run", n_pairs=4)
    RunDir(tmp_path / "run").mark_done("streams")
    args = ["train", str(tmp_path / "run"), "--set", "train.max_steps=1",
            "--set", "train.batch_size=4"]
    assert main(args) == 0
    mtime = (tmp_path / "run" / "train" / "final" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert (tmp_path / "run" / "train" / "final" / "model.safetensors").stat().st_mtime_ns == mtime


def test_cli_retrains_when_streams_change(tmp_path, capsys):
    """The done-check is keyed on the streams index: new data after `streams` means a new run,
    and the checkpoints of the old data are moved aside instead of being resumed."""
    run = tmp_path / "run"
    make_run_streams(run, n_pairs=4, seed=0)
    args = ["train", str(run), "--set", "train.max_steps=1", "--set", "train.batch_size=4"]
    assert main(args) == 0
    first = (run / "train" / "final" / "model.safetensors").read_bytes()
    import shutil

    shutil.rmtree(run / "streams")
    make_run_streams(run, n_pairs=4, seed=1)  # same config, different pairs
    capsys.readouterr()
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out.get("skipped") and out["counts"]["steps"] == 1
    assert (run / "train" / "final" / "model.safetensors").read_bytes() != first
    assert len(list(tmp_path.glob("run/train.old-*/final/model.safetensors"))) == 1


def test_cli_train_without_streams_is_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["train", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") <= 3 and "duplexalign streams" in err and "Traceback" not in err


def test_cli_cuda_without_gpu_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    make_run_streams(tmp_path / "run", n_pairs=4)
    assert main(["train", str(tmp_path / "run"), "--set", "train.device=cuda"]) == 2
    err = capsys.readouterr().err
    assert "train.device: 'cuda' requested but" in err and "Traceback" not in err


def test_model_mapping_needs_a_preset_name():
    import pytest

    from duplexalign.config import load_section
    from duplexalign.errors import ConfigError
    from duplexalign.train.stage import TrainConfig

    cfg = load_section(TrainConfig, "train", None, ["model.preset=sandbox", "model.lora.rank=4",
                                                    "model.lora.enabled=true"])
    assert (cfg.preset().name, cfg.preset().lora.rank, cfg.preset().lora.scaling) == (
        "sandbox", 4, 2.0)  # unnamed LoRA fields keep the preset's values
    with pytest.raises(ConfigError, match="model.preset: name the preset"):
        load_section(TrainConfig, "train", None, ["model.weights=/models/moshiko"])
    with pytest.raises(ConfigError, match="train.model.dimm: Extra inputs"):
        load_section(TrainConfig, "train", None, ["model.preset=tiny", "model.dimm=3"])
    with pytest.raises(ConfigError, match="gradient_checkpointing cannot be combined"):
        load_section(TrainConfig, "train", None, ["model.preset=tiny",
                                                  "model.gradient_checkpointing=true"])
