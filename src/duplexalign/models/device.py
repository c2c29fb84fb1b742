"""Device choice for every model-running stage: `auto` / `cpu` / `cuda` / `cuda:N`, checked once.

Owns turning a configured device name into a `torch.device` (with ONE clear `ConfigError` when the
machine cannot honour it, e.g. `cuda` requested and no GPU visible), the distributed backend that goes
with it (NCCL on CUDA, gloo on CPU), the per-rank device under torchrun (`cuda:LOCAL_RANK`), and the
autocast context (bf16 on CUDA by default, off on CPU unless asked). CUDA-only branches stay a few
lines each, because no test machine has a GPU: everything here is exercised on CPU by monkeypatching
`torch.cuda.is_available` / `torch.cuda.device_count`.
"""

from __future__ import annotations

import contextlib
import os
import re

import torch

from duplexalign.errors import ConfigError

_NAME = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(name: str, key: str = "device", local_rank: int | None = None) -> torch.device:
    """The `torch.device` for a configured name.

    Args:
        name: `auto` (cuda when present, else cpu), `cpu`, `cuda` or `cuda:N`.
        key: the config key, named in the error (e.g. `train.device`).
        local_rank: under torchrun, `cuda`/`auto` become `cuda:local_rank` (default: $LOCAL_RANK).

    Raises:
        ConfigError: unknown name, CUDA requested without a visible GPU, or index out of range.
    """
    m = _NAME.match(name.strip().lower())
    if not m:
        raise ConfigError(f"{key}: {name!r} is not a device; use auto, cpu, cuda or cuda:N")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = ("this torch build has no CUDA" if torch.version.cuda is None
               else "no GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)")
        raise ConfigError(f"{key}: {name!r} requested but {why} (torch {torch.__version__}); "
                          f"set {key}=cpu or {key}=auto")
    count = torch.cuda.device_count()
    if index is None:
        lr = local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", "0"))
        index = str(lr)
    if int(index) >= count:
        raise ConfigError(f"{key}: {name!r} resolves to cuda:{index} but only {count} GPU(s) are "
                          "visible")
    return torch.device("cuda", int(index))


def dist_backend(device: torch.device) -> str:
    """The process-group backend for `device`: `nccl` on CUDA, `gloo` on CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def use_bf16(device: torch.device, bf16: bool | None) -> bool:
    """Whether to autocast to bf16: the explicit setting, else on for CUDA and off for CPU."""
    return device.type == "cuda" if bf16 is None else bf16


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """A bf16 autocast context on `device` (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def set_current(device: torch.device) -> None:
    """Make `device` the current CUDA device (NCCL needs it before the process group starts)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
