"""Released Kyutai checkpoints from a local folder, loaded through moshi's own loaders.

Owns the released layout (`model.safetensors`, `tokenizer_spm_32k_3.model`, the Mimi
`tokenizer-e351c8d8-checkpoint125.safetensors`, an optional `config.json` in moshi's format), the check
that the folder matches the preset it is used with (config keys, then every tensor name and shape,
read lazily without loading a byte of weights, with the exact differences in the error), and the
load itself through `moshi.models.loaders` (`CheckpointInfo`, `get_moshi_lm`), so official files load
exactly as `moshi.server` loads them, fused attention projections included. Only the LM is loaded
here; the Mimi file is optional for training (the streams and evaluate stages take it as a codec
path) and the tokenizer is reported for the stages that tokenize. Nothing downloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from duplexalign.errors import ConfigError

if TYPE_CHECKING:
    from moshi.models.lm import LMModel

    from duplexalign.models.presets import ModelPreset

MOSHI_NAME = "model.safetensors"
TOKENIZER_NAME = "tokenizer_spm_32k_3.model"
MIMI_NAME = "tokenizer-e351c8d8-checkpoint125.safetensors"
CONFIG_NAME = "config.json"

# keys of a released config.json that describe files or inference defaults, not the LM's shape
_NON_LM_KEYS = ("moshi_name", "mimi_name", "tokenizer_name", "lora_name", "model_type",
                "lm_gen_config", "tts_config", "stt_config", "model_id", "mimi_config_name")
# LM keys that do not change the architecture (or that the preset sets for training)
_IGNORED_LM_KEYS = ("depformer_causal", "gradient_checkpointing", "lora", "lora_rank",
                    "lora_scaling")


@dataclass(frozen=True)
class ReleasedFiles:
    """The files of a released checkpoint folder (None = absent)."""

    root: Path
    moshi: Path
    tokenizer: Path | None
    mimi: Path | None
    config: Path | None


def is_released_dir(path: str | Path) -> bool:
    """True when `path` is a folder holding a released `model.safetensors`."""
    return Path(path).is_dir() and (Path(path) / MOSHI_NAME).is_file()


def released_files(root: str | Path, key: str = "model.weights") -> ReleasedFiles:
    """Find the released files in `root`; only `model.safetensors` is required.

    Raises:
        ConfigError: `root` is not a folder or lacks `model.safetensors` (the error lists what is
            there).
    """
    d = Path(root)
    if not d.is_dir():
        raise ConfigError(f"{key}: {d} is not a folder")
    if not (d / MOSHI_NAME).is_file():
        have = sorted(p.name for p in d.iterdir())[:8]
        raise ConfigError(f"{key}: {d} has no {MOSHI_NAME} (found: {', '.join(have) or 'nothing'})")

    def opt(name: str) -> Path | None:
        return d / name if (d / name).is_file() else None

    return ReleasedFiles(d, d / MOSHI_NAME, opt(TOKENIZER_NAME), opt(MIMI_NAME), opt(CONFIG_NAME))


def lm_config(files: ReleasedFiles, preset: ModelPreset) -> dict[str, Any]:
    """The LM keyword arguments of the folder: its `config.json`, else the preset's.

    Raises:
        ConfigError: the config's architecture differs from the preset (each key listed).
    """
    ours = preset.lm_kwargs()
    if files.config is None:
        return ours
    try:
        raw = json.loads(files.config.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{files.config}: not a JSON config ({e})") from None
    theirs = {k: v for k, v in raw.items() if k not in _NON_LM_KEYS}
    problems = []
    for k in sorted(set(theirs) | set(ours)):
        if k in _IGNORED_LM_KEYS:
            continue
        if k not in ours:
            problems.append(f"{k}: {theirs[k]!r} in {files.config.name}, unknown to preset "
                            f"{preset.name!r}")
        elif k in theirs and _norm(theirs[k]) != _norm(ours[k]):
            problems.append(f"{k}: {theirs[k]!r} in {files.config.name}, {ours[k]!r} in preset "
                            f"{preset.name!r}")
    if problems:
        raise ConfigError([f"{files.root} does not match model preset {preset.name!r}:",
                           *problems])
    return {**ours, **{k: v for k, v in theirs.items() if k not in _IGNORED_LM_KEYS}}


def _norm(v: Any) -> Any:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def check_tensors(model: torch.nn.Module, weights: Path) -> list[str]:
    """Every difference between the tensors of `weights` and those `model` expects.

    Reads only the safetensors header (names, shapes), and applies moshi's own load hooks (fused
    `in_proj_weight` / `out_proj.weight` of official files are split per codebook step), by loading
    meta tensors into a meta copy of the model.

    Args:
        model: the target `LMModel`, on the `meta` device.
        weights: a safetensors file.

    Returns:
        Lines `missing: NAME [shape]`, `unexpected: NAME [shape]`, `shape: NAME file [..] model
        [..]`; empty when the file matches.
    """
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    problems = []
    state = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    # moshi's pre-hooks rename/split entries in place; run them on a copy of the name -> shape map
    for name, module in model.named_modules():
        for hook in module._load_state_dict_pre_hooks.values():
            prefix = f"{name}." if name else ""
            hook(state, prefix, {}, True, [], [], [])
    got = {k: list(v.shape) for k, v in state.items()}
    for k in sorted(set(expected) - set(got)):
        problems.append(f"missing: {k} {expected[k]}")
    for k in sorted(set(got) - set(expected)):
        problems.append(f"unexpected: {k} {got[k]}")
    for k in sorted(set(got) & set(expected)):
        if got[k] != expected[k]:
            problems.append(f"shape: {k} file {got[k]} model {expected[k]}")
    return problems


def load_released(preset: ModelPreset, device: str | torch.device = "cpu") -> LMModel:
    """Load the LM of the released folder `preset.weights` with moshi's loader, after the checks.

    Returns:
        The `LMModel` in train mode, weights in `preset.dtype` (moshi keeps conditioner tensors
        in fp32).

    Raises:
        ConfigError: files, config or tensors do not match `preset` (every difference listed).
    """
    from moshi.models.lm import LMModel
    from moshi.models.loaders import CheckpointInfo

    files = released_files(preset.weights)
    cfg = lm_config(files, preset)
    meta = LMModel(device="meta", **{k: v for k, v in cfg.items() if k != "gradient_checkpointing"})
    problems = check_tensors(meta, files.moshi)
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20
                                 else [])
        raise ConfigError([f"{files.moshi} does not match model preset {preset.name!r} "
                           f"({len(problems)} differences):", *shown])
    # every path given explicitly, so CheckpointInfo never reaches for the Hugging Face hub
    info = CheckpointInfo(moshi_weights=files.moshi, mimi_weights=files.mimi or files.root / MIMI_NAME,
                          tokenizer=files.tokenizer or files.root / TOKENIZER_NAME, lm_config=cfg,
                          raw_config=None, mimi_config=None, model_type="moshi")
    from duplexalign.models.presets import DTYPES

    model = info.get_moshi(device=device, dtype=DTYPES[preset.dtype])
    return model.train()


def count_parameters(preset: ModelPreset) -> int:
    """Parameters of the preset's base `LMModel`, counted on the `meta` device (no memory)."""
    from moshi.models.lm import LMModel

    model = LMModel(device="meta", **preset.lm_kwargs())
    return sum(p.numel() for p in model.parameters())
