"""Training checkpoints: trainable weights, optimizer, RNG and data position, written atomically.

Owns the layout `RUN/train/ckpt/step-<N>/`: `trainable.safetensors` (the trained tensors),
`resume.safetensors` + `resume.json` (optimizer, scheduler and RNG state: every tensor in safetensors,
the structure and scalars in JSON) and `state.json` (step, data position, best score); and `latest`, a
pointer file holding the *name* of the newest complete step folder (never a path), replaced atomically
after the folder is complete, so a kill at any moment leaves the previous checkpoint readable. Nothing
here unpickles: a run folder received from someone else cannot run code when training resumes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from duplexalign.errors import ConfigError
from duplexalign.runs import atomic_write_text

TRAINABLE = "trainable.safetensors"
RESUME_TENSORS = "resume.safetensors"
RESUME_JSON = "resume.json"
STATE = "state.json"
_NAME = re.compile(r"^step-\d{1,12}$")


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors that training changes (parameters with requires_grad)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad}


def save(ckpt_root: Path, step: int, model: torch.nn.Module, extra: dict[str, Any],
         state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `step` atomically and prune older ones (keeping `keep`).

    Args:
        ckpt_root: the checkpoint folder (`RUN/train/ckpt`).
        step: optimizer steps done.
        model: the model; its trainable parameters are stored.
        extra: resume state made of tensors, dicts, lists, tuples and JSON scalars (optimizer and
            scheduler `state_dict()`s, RNG state).
        state: JSON-serialisable scalars (step, data position, best score).
        keep: number of step folders kept.

    Raises:
        TypeError: `extra` holds something that is neither a tensor nor plain data.
    """
    final = ckpt_root / f"step-{step:07d}"
    tmp = ckpt_root / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / TRAINABLE))
    tensors: dict[str, torch.Tensor] = {}
    skeleton = to_plain(extra, tensors)
    save_file(tensors, str(tmp / RESUME_TENSORS))
    (tmp / RESUME_JSON).write_text(json.dumps(skeleton))
    (tmp / STATE).write_text(json.dumps(state, indent=2, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_text(ckpt_root / "latest", final.name + "\n")
    for old in sorted(ckpt_root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint directory, or None.

    Raises:
        ConfigError: the `latest` pointer does not hold the name of a step folder (a path, `..`).
    """
    ptr = ckpt_root / "latest"
    if not ptr.exists():
        return None
    name = ptr.read_text(errors="replace").strip()
    if not _NAME.match(name):
        raise ConfigError(f"{ptr} must hold a checkpoint folder name like step-0000050, not "
                          f"{name[:60]!r}; delete it to resume from scratch")
    d = ckpt_root / name
    return d if (d / STATE).exists() else None


def load(ckpt: Path, model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load trainable weights into `model`; return `(extra, state)` as given to `save`.

    Raises:
        ConfigError: an old-format checkpoint (a pickled `optim.pt`, never loaded), missing resume
            files, or weights that do not belong to `model`.
    """
    if not (ckpt / RESUME_JSON).is_file() or not (ckpt / RESUME_TENSORS).is_file():
        old = " (an older format: optim.pt is a pickle and is not loaded)" \
            if (ckpt / "optim.pt").exists() else ""
        raise ConfigError(f"{ckpt} lacks {RESUME_JSON}/{RESUME_TENSORS}{old}; delete "
                          f"{ckpt.parent} to train from the start")
    weights = load_file(str(ckpt / TRAINABLE))
    params = dict(model.named_parameters())
    unknown = sorted(set(weights) - set(params))
    if unknown:
        raise ConfigError(f"{ckpt / TRAINABLE} holds {len(unknown)} tensors the model lacks (e.g. "
                          f"{unknown[0]}): was it written with another train.model?")
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t)
    tensors = load_file(str(ckpt / RESUME_TENSORS))
    try:
        extra = from_plain(json.loads((ckpt / RESUME_JSON).read_text()), tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{ckpt / RESUME_JSON} is damaged ({type(e).__name__}: {e}); delete "
                          f"{ckpt} to resume from the previous checkpoint") from None
    return extra, json.loads((ckpt / STATE).read_text())


def to_plain(obj: Any, tensors: dict[str, torch.Tensor], where: str = "extra") -> Any:
    """JSON form of nested tensors/dicts/lists/tuples/scalars; tensors are moved into `tensors`
    (keyed by their position) and replaced by `{"__tensor__": key}`. Dicts become
    `{"__dict__": [[key, value], ...]}` (keys may be ints, as in optimizer state) and tuples
    `{"__tuple__": [...]}`, so that `from_plain` restores the exact structure."""
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"{where}: dict key {k!r} cannot be stored")
        return {"__dict__": [[k, to_plain(v, tensors, f"{where}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be stored in a checkpoint")


def from_plain(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `to_plain`."""
    if isinstance(obj, list):
        return [from_plain(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(from_plain(v, tensors) for v in obj["__tuple__"])
        return {k: from_plain(v, tensors) for k, v in obj["__dict__"]}
    return obj
