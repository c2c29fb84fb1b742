"""Export a trained `LMModel` in the two forms moshi itself loads: merged weights and LoRA adapters.

Owns the translation from our module names (a `LoRALinear` at `X` holds `X.frozen_W`, `X.lora_A`,
`X.lora_B`) to moshi's checkpoint conventions:
- `merged/model.safetensors`: plain LM tensor names, each adapter folded in (W + scaling * B @ A,
  computed in fp32), with `merged/config.json` = the LM keyword arguments: `get_moshi_lm(file,
  lm_kwargs)` or `moshi.server --moshi-weight merged/model.safetensors --config-path
  merged/config.json` run it as a base model.
- `lora/lora.safetensors` + `lora/config.json` (`lora: true`, `lora_rank`, `lora_scaling`): moshi's
  loader wraps EVERY linear of the LM in `LoRALinear` (`replace_all_linear_with_lora`) on the meta
  device and then loads the adapter file, so the file holds an adapter for every linear: the trained
  ones, and exact zeros for the linears we did not adapt (B = 0 makes them the base linear). The base
  weights are the released `model.safetensors` the run started from, or `lora/base.safetensors`
  written here when the run started from random or our own weights.
`export.json` records what was written and the `moshi.server` command lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from duplexalign.errors import ConfigError
from duplexalign.runs import atomic_write_text

MERGED_DIR, LORA_DIR = "merged", "lora"
WEIGHTS, ADAPTERS, BASE, CONFIG = "model.safetensors", "lora.safetensors", "base.safetensors", \
    "config.json"


def _lora_modules(model: nn.Module) -> dict[str, nn.Module]:
    from moshi.modules.lora import LoRALinear

    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def _plain_linears(model: nn.Module, lora: dict[str, nn.Module]) -> dict[str, nn.Linear]:
    """`nn.Linear`s of the base LM that carry no adapter (the parts of a LoRALinear excluded)."""
    inside = tuple(f"{n}." for n in lora)
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and not n.startswith(inside)}


def base_state(model: nn.Module, merge: bool) -> dict[str, torch.Tensor]:
    """The LM's tensors under moshi's plain names, adapters merged (`merge`) or dropped.

    Returns:
        name -> contiguous CPU tensor, in the model's dtype.
    """
    lora = _lora_modules(model)
    out: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        owner = next((n for n in lora if name.startswith(f"{n}.")), None)
        if owner is None:
            out[name] = t.detach().cpu().contiguous()
            continue
        if not name.endswith(".frozen_W.weight"):
            continue
        m = lora[owner]
        w = m.frozen_W.weight.detach()
        if merge:
            delta = m.lora_B.weight.detach().float() @ m.lora_A.weight.detach().float()
            w = (w.float() + m.scaling * delta).to(w.dtype)
        out[f"{owner}.weight"] = w.cpu().contiguous()
    return out


def adapter_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], int, float]:
    """Adapters for every linear of the LM, as moshi's loader expects them.

    Returns:
        (tensors `X.lora_A.weight [r, in]` / `X.lora_B.weight [out, r]`, rank r, scaling).

    Raises:
        ConfigError: the model has no adapters, or adapters of several ranks/scalings (moshi's
            config has one `lora_rank` and one `lora_scaling`).
    """
    lora = _lora_modules(model)
    if not lora:
        raise ConfigError("export: the model has no LoRA adapters (full fine-tuning); only the "
                          "merged form applies")
    ranks = {m.rank for m in lora.values()}
    scalings = {float(m.scaling) for m in lora.values()}
    if len(ranks) != 1 or len(scalings) != 1:
        raise ConfigError(f"export: moshi needs one LoRA rank and scaling, found ranks {ranks}, "
                          f"scalings {scalings}")
    rank, scaling = ranks.pop(), scalings.pop()
    out = {}
    for n, m in lora.items():
        out[f"{n}.lora_A.weight"] = m.lora_A.weight.detach().cpu().contiguous()
        out[f"{n}.lora_B.weight"] = m.lora_B.weight.detach().cpu().contiguous()
    for n, lin in _plain_linears(model, lora).items():  # zero adapters: the base linear exactly
        w = lin.weight
        out[f"{n}.lora_A.weight"] = torch.zeros(rank, lin.in_features, dtype=w.dtype)
        out[f"{n}.lora_B.weight"] = torch.zeros(lin.out_features, rank, dtype=w.dtype)
    return out, rank, scaling


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def export_moshi(model: nn.Module, lm_kwargs: dict[str, Any], out_dir: str | Path,
                 released: Any | None = None) -> dict[str, Any]:
    """Write `merged/` and (with LoRA) `lora/` into `out_dir`, plus `export.json`.

    Args:
        model: the trained `LMModel` (with or without `LoRALinear`s).
        lm_kwargs: the LM keyword arguments it was built from (moshi's config keys).
        out_dir: output folder (created).
        released: the `ReleasedFiles` the run started from, or None (then the LoRA form gets its
            own `base.safetensors`).

    Returns:
        The content of `export.json` (paths and the `moshi.server` command lines).
    """
    out = Path(out_dir)
    cfg = {k: v for k, v in lm_kwargs.items() if k != "gradient_checkpointing"}
    _save(base_state(model, merge=True), out / MERGED_DIR / WEIGHTS)
    atomic_write_text(out / MERGED_DIR / CONFIG, json.dumps(cfg, indent=2))
    extra = ""
    if released is not None:
        extra = (f" --tokenizer {released.tokenizer}" if released.tokenizer else "") + \
            (f" --mimi-weight {released.mimi}" if released.mimi else "")
    info: dict[str, Any] = {
        "merged": {"weights": str(out / MERGED_DIR / WEIGHTS),
                   "config": str(out / MERGED_DIR / CONFIG),
                   "server": f"python -m moshi.server --moshi-weight {out / MERGED_DIR / WEIGHTS} "
                             f"--config-path {out / MERGED_DIR / CONFIG}{extra}"}}
    if _lora_modules(model):
        adapters, rank, scaling = adapter_state(model)
        _save(adapters, out / LORA_DIR / ADAPTERS)
        base = released.moshi if released is not None else out / LORA_DIR / BASE
        if released is None:
            _save(base_state(model, merge=False), base)
        lcfg = {**cfg, "lora": True, "lora_rank": rank, "lora_scaling": scaling}
        atomic_write_text(out / LORA_DIR / CONFIG, json.dumps(lcfg, indent=2))
        info["lora"] = {"weights": str(base), "adapters": str(out / LORA_DIR / ADAPTERS),
                        "config": str(out / LORA_DIR / CONFIG), "rank": rank, "scaling": scaling,
                        "server": f"python -m moshi.server --moshi-weight {base} --lora-weight "
                                  f"{out / LORA_DIR / ADAPTERS} --config-path "
                                  f"{out / LORA_DIR / CONFIG}{extra}"}
    atomic_write_text(out / "export.json", json.dumps(info, indent=2))
    return info
