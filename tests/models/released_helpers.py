"""Writes a reduced-size checkpoint in the released Kyutai layout, from moshi's own constructors.

`write_released(dir, preset)` builds the preset's `LMModel` with moshi's `get_moshi_lm(None, ...)`
(random weights, seeded), stores its tensors the way official files do (attention projections fused
into `in_proj_weight` / `out_proj.weight`), writes a moshi-format `config.json` and copies the
sandbox SentencePiece model under the released tokenizer name. The Mimi file is written only on
request (a tiny random Mimi; loading the LM never needs it).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from duplexalign.models.presets import get_preset
from duplexalign.models.released import CONFIG_NAME, MIMI_NAME, MOSHI_NAME, TOKENIZER_NAME

SANDBOX_TOKENIZER = (Path(__file__).resolve().parents[2] / "src" / "duplexalign" / "sandbox"
                     / "assets" / "tokenizer.model")
_PROJ = re.compile(r"^(.*\.self_attn)\.(in|out)_projs\.(\d+)\.weight$")


def fuse_projections(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official layout: per-step `in_projs.N` / `out_projs.N` concatenated into one tensor."""
    out, groups = {}, {}
    for k, v in state.items():
        m = _PROJ.match(k)
        if m:
            groups.setdefault((m.group(1), m.group(2)), {})[int(m.group(3))] = v
        else:
            out[k] = v
    for (prefix, kind), parts in groups.items():
        name = f"{prefix}.in_proj_weight" if kind == "in" else f"{prefix}.out_proj.weight"
        out[name] = torch.cat([parts[i] for i in sorted(parts)], dim=0)
    return out


def write_released(root: Path, preset: str = "tiny", seed: int = 0, config: bool = True,
                   mimi: bool = False) -> torch.nn.Module:
    """Write the released layout into `root`; return the `LMModel` whose weights it holds."""
    from moshi.models.loaders import get_moshi_lm

    p = get_preset(preset)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = get_moshi_lm(None, lm_kwargs=p.lm_kwargs(), dtype=torch.float32)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(fuse_projections(state), str(root / MOSHI_NAME))
    shutil.copy(SANDBOX_TOKENIZER, root / TOKENIZER_NAME)
    if config:
        cfg = {**p.lm_kwargs(), "moshi_name": MOSHI_NAME, "mimi_name": MIMI_NAME,
               "tokenizer_name": TOKENIZER_NAME, "model_type": "moshi"}
        cfg.pop("gradient_checkpointing")
        (root / CONFIG_NAME).write_text(json.dumps(cfg))
    if mimi:
        from moshi.models.loaders import _mimi_config, get_mimi

        small = json.loads(json.dumps(_mimi_config))
        small["seanet"].update(dimension=32, n_filters=4)
        small["transformer"].update(d_model=32, num_heads=2, num_layers=1, dim_feedforward=64,
                                    input_dimension=32, output_dimensions=[32])
        small["quantizer"].update(dimension=32, input_dimension=32, output_dimension=32)
        save_file(get_mimi(None, small).state_dict(), str(root / MIMI_NAME))
    return model.train()
