"""Training checkpoints: trainable weights, optimizer, RNG and data position, written atomically.

Owns the layout `RUN/train/ckpt/step-<N>/` (`trainable.safetensors`, `optim.pt`, `state.json`) and
`latest`, a pointer file replaced atomically after the directory is complete, so a kill at any moment
leaves the previous checkpoint readable. `optim.pt` holds optimizer/scheduler/RNG state (torch's own
format: it is resume state of this library, never an interchange file).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from duplexalign.runs import atomic_write_text


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that training changes (parameters with requires_grad)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad}


def save(ckpt_root: Path, step: int, model: torch.nn.Module, extra: dict[str, Any],
         state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `step` atomically and prune older ones (keeping `keep`)."""
    final = ckpt_root / f"step-{step:07d}"
    tmp = ckpt_root / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(extra, tmp / "optim.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_text(ckpt_root / "latest", final.name + "\n")
    for old in sorted(ckpt_root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    ptr = ckpt_root / "latest"
    if not ptr.exists():
        return None
    d = ckpt_root / ptr.read_text().strip()
    return d if (d / "state.json").exists() else None


def load(ckpt: Path, model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load trainable weights into `model`; return `(extra, state)` (optimizer/RNG, step/data)."""
    weights = load_file(str(ckpt / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t)
    extra = torch.load(ckpt / "optim.pt", weights_only=False)
    return extra, json.loads((ckpt / "state.json").read_text())
