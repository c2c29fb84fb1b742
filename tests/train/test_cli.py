"""End to end: `duplexalign train RUN` on shards written by ShardWriter."""

from __future__ import annotations

import json

from duplexalign.cli.main import main
from duplexalign.runs import RunDir

from .helpers import make_streams


def test_cli_train_dpo_ln(tmp_path, capsys):
    make_streams(tmp_path / "run" / "streams", n_pairs=8)
    RunDir(tmp_path / "run").mark_done("streams")
    rc = main(["train", str(tmp_path / "run"), "--set", "train.max_steps=3",
               "--set", "train.batch_size=4", "--set", "train.loss={dpo_ln: 1.0, sft: 0.5}"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["counts"]["steps"] == 3
    assert (tmp_path / "run" / "train" / "final" / "model.safetensors").exists()
    assert (tmp_path / "run" / ".done" / "train").exists()
    assert "train" in json.loads((tmp_path / "run" / "stats.json").read_text())


def test_cli_rerun_is_noop(tmp_path, capsys):
    make_streams(tmp_path / "run" / "streams", n_pairs=4)
    RunDir(tmp_path / "run").mark_done("streams")
    args = ["train", str(tmp_path / "run"), "--set", "train.max_steps=1",
            "--set", "train.batch_size=4"]
    assert main(args) == 0
    mtime = (tmp_path / "run" / "train" / "final" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert (tmp_path / "run" / "train" / "final" / "model.safetensors").stat().st_mtime_ns == mtime
