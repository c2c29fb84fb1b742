"""Typed model presets and the only place that turns them into a moshi `LMModel`.

Owns the translation from a small, validated `ModelPreset` (sizes, number of codebooks per speaker,
cards, optional local weights and tokenizer paths, LoRA settings) into the keyword soup of
`moshi.models.lm.LMModel`, plus saving and loading checkpoints as `model.safetensors` + `config.json`
(the preset itself, so a checkpoint rebuilds without any other file). Nothing downloads: the
`moshi_7b` preset reads weights from a local path the user gives (a released Kyutai folder, loaded by
`released.py` through moshi's loaders) and fails with a clear error if it is absent. Presets: `tiny` (CI, ~0.1 M parameters), `sandbox` (the 1.15 M model of the sandbox probe),
`moshi_7b` (the real Moshi 7B configuration).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.models.lora import LoraSettings, add_lora
from duplexalign.registry import Registry
from duplexalign.runs import atomic_write_text

if TYPE_CHECKING:
    from moshi.models.lm import LMModel

os.environ.setdefault("NO_TORCH_COMPILE", "1")

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MOSHI_HINT = "pip install torch==2.13.0 && pip install --no-deps moshi==0.2.13 (see scripts/setup.sh)"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelPreset(BaseModel):
    """Everything needed to build one moshi `LMModel` (field names follow moshi's config keys).

    `num_codebooks` is K, the audio codebooks per speaker: the model reads `R = 1 + 2K` rows
    (`n_q = 2K`) and predicts K (`dep_q = K`), with Moshi's delays (text 0, semantic 0, acoustic 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dim: int
    num_heads: int
    num_layers: int
    hidden_scale: float = 4.125
    context: int = 250
    max_period: float = 10000.0
    num_codebooks: int = 8
    card: int = 2048
    text_card: int = 32000
    depformer_dim: int = 64
    depformer_num_heads: int = 4
    depformer_num_layers: int = 1
    depformer_dim_feedforward: int | None = None
    gradient_checkpointing: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    weights: Path | None = None
    """Base weights: a released Kyutai folder (`model.safetensors`, tokenizer, Mimi, optional
    `config.json`), or a safetensors file with this preset's tensor names; None = random init."""
    requires_weights: bool = False
    """If true, building without `weights` is an error (real models)."""
    tokenizer: Path | None = None
    """Local SentencePiece model of the text stream (used by other stages)."""
    lora: LoraSettings = LoraSettings()
    seed: int = 0
    """Seed of the random initialisation (weights absent)."""
    user_codebooks_heard: int | None = Field(None, ge=1)
    """How many of the user's K codebooks the model embeds, semantic first; the others are read as
    silence (their embeddings are zero and receive no gradient, so an exported checkpoint behaves
    the same without this code). None = all K (Moshi). The sandbox's tiny model hears the user
    through codebook 0 only: its acoustic codebooks carry the speaker, and with six training
    speakers they made unseen voices harder to understand (docs/sandbox.md section 13)."""

    @model_validator(mode="after")
    def _heard_fits(self) -> ModelPreset:
        if self.user_codebooks_heard is not None and self.user_codebooks_heard > self.num_codebooks:
            raise ValueError(f"user_codebooks_heard ({self.user_codebooks_heard}) exceeds "
                             f"num_codebooks ({self.num_codebooks})")
        return self

    @property
    def delays(self) -> list[int]:
        """Per-row delays, `[R]`: text 0, then per speaker semantic 0 and acoustic 1."""
        speaker = [0] + [1] * (self.num_codebooks - 1)
        return [0] + speaker + speaker

    @property
    def num_rows(self) -> int:
        """R = 1 + 2K rows of a `codes [B, R, T]` tensor."""
        return 1 + 2 * self.num_codebooks

    def lm_kwargs(self) -> dict:
        """The keyword arguments of `moshi.models.lm.LMModel` for this preset."""
        ff = self.depformer_dim_feedforward or int(self.hidden_scale * self.depformer_dim)
        return {
            "dim": self.dim, "num_heads": self.num_heads, "num_layers": self.num_layers,
            "hidden_scale": self.hidden_scale, "causal": True, "layer_scale": None,
            "context": self.context, "max_period": self.max_period, "gating": "silu",
            "norm": "rms_norm_f32", "positional_embedding": "rope",
            "text_card": self.text_card, "existing_text_padding_id": 3,
            "existing_text_end_padding_id": 0, "n_q": 2 * self.num_codebooks,
            "dep_q": self.num_codebooks, "card": self.card, "delays": self.delays,
            "depformer_dim": self.depformer_dim, "depformer_dim_feedforward": ff,
            "depformer_num_heads": self.depformer_num_heads,
            "depformer_num_layers": self.depformer_num_layers, "depformer_layer_scale": None,
            "depformer_multi_linear": True, "depformer_context": self.num_codebooks,
            "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
            "depformer_weights_per_step": True,
            "gradient_checkpointing": self.gradient_checkpointing,
        }


PRESETS: Registry[ModelPreset] = Registry("model preset")

PRESETS.add("tiny", ModelPreset(
    name="tiny", dim=32, num_heads=2, num_layers=2, context=256, num_codebooks=4, card=64,
    text_card=64, depformer_dim=32, depformer_num_heads=2, depformer_num_layers=1))
PRESETS.add("sandbox", ModelPreset(
    name="sandbox", dim=128, num_heads=4, num_layers=4, context=250, num_codebooks=4, card=64,
    text_card=64, depformer_dim=64, depformer_num_heads=4, depformer_num_layers=1,
    depformer_dim_feedforward=264))
PRESETS.add("moshi_7b", ModelPreset(
    name="moshi_7b", dim=4096, num_heads=32, num_layers=32, context=3000, num_codebooks=8,
    card=2048, text_card=32000, depformer_dim=1024, depformer_num_heads=16, depformer_num_layers=6,
    depformer_dim_feedforward=int(4.125 * 1024), dtype="bfloat16", requires_weights=True,
    lora=LoraSettings(enabled=True, rank=128, scaling=2.0, targets=("temporal", "text_head"))))


def get_preset(preset: str | ModelPreset | dict, **updates) -> ModelPreset:
    """Resolve a preset name, dict or object, applying field `updates` (validated)."""
    if isinstance(preset, str):
        preset = PRESETS.get(preset)
    elif isinstance(preset, dict):
        preset = ModelPreset.model_validate(preset)
    if updates:
        preset = ModelPreset.model_validate({**preset.model_dump(), **updates})
    return preset


def resolve_model(model: str | dict[str, Any]) -> ModelPreset:
    """Resolve a model choice: a preset name, or `{preset: NAME, <field>: value, ...}` (a `lora`
    mapping updates the preset's LoRA settings key by key).

    Raises:
        ValueError: no preset name in the mapping (pydantic turns it into a config error).
    """
    if isinstance(model, str):
        return get_preset(model)
    updates = dict(model)
    name = updates.pop("preset", None)
    if not isinstance(name, str):
        raise ValueError("model.preset: name the preset (tiny, sandbox, moshi_7b) next to "
                         f"the fields {sorted(updates)}")
    if isinstance(updates.get("lora"), dict):
        updates["lora"] = {**get_preset(name).lora.model_dump(), **updates["lora"]}
    return get_preset(name, **updates)


def _import_lm():
    try:
        from moshi.models.lm import LMModel
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BackendUnavailable("moshi", MOSHI_HINT, str(e)) from e
    return LMModel


def build_model(preset: str | ModelPreset | dict, device: str | torch.device = "cpu",
                weights: str | Path | None = None) -> LMModel:
    """Build a moshi `LMModel` from a preset, load its local weights, and add LoRA if configured.

    Args:
        preset: a name in `PRESETS`, a `ModelPreset`, or its dict form.
        device: torch device of the model.
        weights: overrides `preset.weights` (a local safetensors file of base weights).

    Returns:
        The model in train mode, `preset` attached as `model.duplexalign_preset`.

    Raises:
        ConfigError: the preset requires weights and none were given, or the file is missing.
    """
    p = get_preset(preset)
    if weights is not None:
        p = p.model_copy(update={"weights": Path(weights)})
    if p.weights is None and p.requires_weights:
        raise ConfigError(f"model preset {p.name!r} needs local weights: set model.weights to the "
                          "released checkpoint folder (nothing is downloaded)")
    if p.weights is not None and not Path(p.weights).exists():
        raise ConfigError(f"model.weights: {p.weights} does not exist")
    LMModel = _import_lm()
    dtype = DTYPES[p.dtype]
    if p.weights is not None and Path(p.weights).is_dir():
        from duplexalign.models.released import load_released

        model = load_released(p, device=device)
    elif p.weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            model = LMModel(device=device, dtype=dtype, **p.lm_kwargs())
    else:
        from safetensors.torch import load_file

        model = LMModel(device="meta", dtype=dtype, **p.lm_kwargs())
        state = {k: v.to(dtype) if v.is_floating_point() else v
                 for k, v in load_file(str(p.weights), device=str(device)).items()}
        model.load_state_dict(state, assign=True, strict=False)
        missing = [k for k, v in model.state_dict().items() if v.is_meta]
        if missing:
            raise ConfigError(f"model.weights: {p.weights} lacks {len(missing)} tensors, e.g. "
                              f"{missing[:3]} (does it match preset {p.name!r}?)")
    silence_user_codebooks(model, p)
    if p.lora.enabled:

        add_lora(model, p.lora)
    model.duplexalign_preset = p
    return model


def _silent(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(output)


def silence_user_codebooks(model: LMModel, preset: ModelPreset) -> None:
    """Make `model` deaf to the user's codebooks past `preset.user_codebooks_heard`: zero their
    input embeddings (`model.emb[K + i]`) and replace their output by zeros, which also keeps
    the optimizer from moving them."""
    if preset.user_codebooks_heard is None:
        return
    k = preset.num_codebooks
    for i in range(k + preset.user_codebooks_heard, 2 * k):
        with torch.no_grad():
            model.emb[i].weight.zero_()
        model.emb[i].register_forward_hook(_silent)


def save_model(model: LMModel, out_dir: str | Path, adapters_only: bool = False) -> Path:
    """Write `model.safetensors` (+ `config.json` with the preset) into `out_dir`, atomically.

    Args:
        model: a model built by `build_model` (it carries its preset).
        out_dir: directory to write into (created).
        adapters_only: with LoRA, store only the `lora_A`/`lora_B` tensors (small files); loading
            them then needs the base weights of the preset.

    Returns:
        The path of the weights file.
    """
    from safetensors.torch import save_file

    p: ModelPreset = model.duplexalign_preset
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not adapters_only or ".lora_" in k}
    path = out / WEIGHTS_NAME
    tmp = out / f".{WEIGHTS_NAME}.{os.getpid()}.tmp"
    # one metadata key: safetensors writes several in a random order, so the same model saved
    # twice would give different bytes
    meta = json.dumps({"preset": p.name, "adapters_only": adapters_only}, sort_keys=True)
    save_file(state, str(tmp), metadata={"duplexalign": meta})
    os.replace(tmp, path)
    cfg = {"preset": p.model_dump(mode="json"), "adapters_only": adapters_only}
    atomic_write_text(out / CONFIG_NAME, json.dumps(cfg, indent=2, sort_keys=True))
    return path


def load_model(ckpt_dir: str | Path, device: str | torch.device = "cpu") -> LMModel:
    """Rebuild a model saved by `save_model` (base weights from the preset when adapters only)."""
    from safetensors.torch import load_file

    d = Path(ckpt_dir)
    if not (d / CONFIG_NAME).is_file() or not (d / WEIGHTS_NAME).is_file():
        raise ConfigError(f"{d} is not a duplexalign model checkpoint "
                          f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})")
    cfg = json.loads((d / CONFIG_NAME).read_text())
    p = ModelPreset.model_validate(cfg["preset"])
    if not cfg.get("adapters_only"):
        p = p.model_copy(update={"weights": None, "requires_weights": False})
    model = build_model(p, device=device)
    state = load_file(str(d / WEIGHTS_NAME), device=str(device))
    result = model.load_state_dict(state, strict=not cfg.get("adapters_only"))
    if cfg.get("adapters_only") and result.unexpected_keys:
        raise ConfigError(f"{d}: unexpected tensors {result.unexpected_keys[:3]}")
    model.duplexalign_preset = p
    return model
