"""LoRA on a moshi `LMModel` through moshi's own `LoRALinear`, and the switch back to the base model.

Owns the `LoraSettings` a preset carries, which linears get adapters (selected by target group),
their initialisation (Kaiming-uniform A, zero B, so a freshly wrapped model equals the base model),
freezing everything else, the parameter groups with separate learning rates for the temporal and
depth transformers, and `lora_scale`, a context manager that sets every LoRA scaling to a value (0.0
gives the exact base model: the free DPO reference).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import BaseModel, ConfigDict
from torch import nn


class LoraSettings(BaseModel):
    """Low-rank adapters through moshi's `LoRALinear` (B zero-initialised, so wrapping is a no-op).

    `targets` selects which linears get adapters by module-name prefix: `temporal` = the temporal
    transformer (`transformer.`), `text_head` = `text_linear`, `depth` = the depth transformer and its
    input projections (`depformer`), `audio_heads` = `linears.`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    rank: int = 16
    scaling: float = 2.0
    targets: tuple[Literal["temporal", "text_head", "depth", "audio_heads"], ...] = ("temporal",)


TARGET_PREFIXES = {
    "temporal": ("transformer.",),
    "text_head": ("text_linear",),
    "depth": ("depformer",),
    "audio_heads": ("linears.",),
}


def _lora_cls():
    from moshi.modules.lora import LoRALinear

    return LoRALinear


def add_lora(model: nn.Module, settings: LoraSettings) -> int:
    """Wrap the targeted `nn.Linear`s of `model` in `LoRALinear` and freeze all other weights.

    Args:
        model: a moshi `LMModel` (modified in place).
        settings: rank, scaling and target groups.

    Returns:
        The number of wrapped linears.
    """
    LoRALinear = _lora_cls()
    prefixes = tuple(p for t in settings.targets for p in TARGET_PREFIXES[t])
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and n.startswith(prefixes)
             and ".lora_" not in n and not n.endswith("frozen_W")]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        lin: nn.Linear = getattr(parent, attr)
        w = lin.weight
        lora = LoRALinear(lin.in_features, lin.out_features, settings.rank, settings.scaling,
                          device=w.device, dtype=w.dtype)
        lora.frozen_W = lin
        nn.init.kaiming_uniform_(lora.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(lora.lora_B.weight)
        setattr(parent, attr, lora)
    for n, p in model.named_parameters():
        p.requires_grad_(".lora_" in n)
    return len(names)


def has_lora(model: nn.Module) -> bool:
    """True when the model contains at least one `LoRALinear`."""
    LoRALinear = _lora_cls()
    return any(isinstance(m, LoRALinear) for m in model.modules())


@contextmanager
def lora_scale(model: nn.Module, value: float = 0.0) -> Iterator[nn.Module]:
    """Temporarily set the scaling of every `LoRALinear` in `model` to `value`.

    With `value=0.0` the output is bit-for-bit the base model's (the adapter term is multiplied by
    exactly zero), which makes the LoRA-off model the DPO reference without a second copy.
    """
    LoRALinear = _lora_cls()
    mods = [m for m in model.modules() if isinstance(m, LoRALinear)]
    old = [m.scaling for m in mods]
    try:
        for m in mods:
            m.scaling = value
        yield model
    finally:
        for m, s in zip(mods, old, strict=True):
            m.scaling = s


def freeze_for_text_only(model: nn.Module) -> None:
    """Freeze the depth transformer and audio heads (no gradient reaches them from a text loss)."""
    for n, p in model.named_parameters():
        if n.startswith(("depformer", "linears.")):
            p.requires_grad_(False)


def param_groups(model: nn.Module, lr: float, depth_lr: float | None = None,
                 weight_decay: float = 0.0) -> list[dict]:
    """AdamW parameter groups: temporal side at `lr`, depth transformer + audio heads at `depth_lr`.

    Only parameters with `requires_grad` are included; empty groups are dropped.
    """
    temporal, depth = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (depth if n.startswith(("depformer", "linears.")) else temporal).append(p)
    groups = [{"params": temporal, "lr": lr, "weight_decay": weight_decay, "name": "temporal"},
              {"params": depth, "lr": depth_lr if depth_lr is not None else lr,
               "weight_decay": weight_decay, "name": "depth"}]
    return [g for g in groups if g["params"]]


def trainable_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


