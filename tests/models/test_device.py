"""Device selection: `auto`/`cpu`/`cuda[:N]` with CUDA faked by monkeypatching (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.models import device as dev


@pytest.fixture
def gpus(monkeypatch):
    """Pretend `n` GPUs are visible."""
    def set_(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    return set_


def test_auto_is_cpu_without_gpu(gpus):
    gpus(0)
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device("cpu") == torch.device("cpu")


def test_auto_is_local_rank_gpu(gpus, monkeypatch):
    gpus(4)
    assert dev.resolve_device("auto", local_rank=0) == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert dev.resolve_device("auto") == torch.device("cuda", 3)
    assert dev.resolve_device("cuda") == torch.device("cuda", 3)
    assert dev.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert dev.resolve_device("CPU") == torch.device("cpu")


def test_cuda_without_gpu_names_the_key(gpus):
    gpus(0)
    with pytest.raises(ConfigError, match=r"evaluate.device: 'cuda' requested but .*"
                                          r"set evaluate.device=cpu"):
        dev.resolve_device("cuda", "evaluate.device")


def test_bad_names_and_indices(gpus):
    gpus(2)
    with pytest.raises(ConfigError, match="only 2 GPU"):
        dev.resolve_device("cuda:2")
    with pytest.raises(ConfigError, match="not a device"):
        dev.resolve_device("gpu")


def test_backend_and_bf16_follow_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert dev.dist_backend(cpu) == "gloo" and dev.dist_backend(cuda) == "nccl"
    assert dev.use_bf16(cuda, None) and not dev.use_bf16(cpu, None)
    assert dev.use_bf16(cpu, True) and not dev.use_bf16(cuda, False)
    with dev.autocast(cpu, True):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with dev.autocast(cpu, False):
        assert not torch.is_autocast_enabled("cpu")


def test_evaluate_cuda_without_gpu_is_one_line(tmp_path, capsys, gpus):
    from duplexalign.cli.main import main
    from duplexalign.models.presets import build_model, save_model

    gpus(0)
    save_model(build_model("tiny"), tmp_path / "ckpt")
    rc = main(["evaluate", str(tmp_path / "ckpt"), "--tasks", "timing", "--out",
               str(tmp_path / "eval"), "--set", "evaluate.device=cuda"])
    err = capsys.readouterr().err
    assert rc == 2 and "evaluate.device: 'cuda' requested but" in err and "Traceback" not in err
