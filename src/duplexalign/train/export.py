"""`duplexalign export RUN --out DIR`: the trained model of a run, in the forms moshi loads.

Owns which trained weights of a run are exported (`best/`, else `final/`, else the latest resumable
checkpoint rebuilt from the run's resolved train config) and what base the run started from (a
released folder, whose `model.safetensors` the LoRA form then points to). The conversion itself is
`models.export.export_moshi`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from duplexalign.errors import ConfigError
from duplexalign.models.export import export_moshi
from duplexalign.models.presets import CONFIG_NAME, ModelPreset, build_model, load_model
from duplexalign.models.released import is_released_dir, lm_config, released_files
from duplexalign.train import checkpoint

log = logging.getLogger(__name__)

Which = Literal["auto", "best", "final", "latest"]


def _trained(run_dir: Path, which: Which):
    """(model, preset as trained, source description)."""
    train = run_dir / "train"
    for name in ("best", "final"):
        d = train / name
        if which in ("auto", name) and (d / CONFIG_NAME).is_file():
            preset = ModelPreset.model_validate(json.loads((d / CONFIG_NAME).read_text())["preset"])
            return load_model(d), preset, str(d)
        if which == name:
            raise ConfigError(f"export: {d} does not exist (try --which auto)")
    ckpt = checkpoint.latest(train / "ckpt")
    cfg_path = train / "config.json"
    if ckpt is None or not cfg_path.is_file():
        raise ConfigError(f"export: {run_dir} has no trained model (train/best, train/final or a "
                          "checkpoint with train/config.json); run `duplexalign train` first")
    from duplexalign.train.stage import TrainConfig

    cfg = TrainConfig.model_validate(json.loads(cfg_path.read_text()))
    model = load_model(cfg.init) if cfg.init else build_model(cfg.preset())
    checkpoint.load(ckpt, model)
    return model, model.duplexalign_preset, str(ckpt)


def export_run(run_dir: str | Path, out_dir: str | Path, which: Which = "auto") -> dict[str, Any]:
    """Export the trained model of `run_dir` into `out_dir` (see `models.export.export_moshi`).

    Returns:
        The content of `out_dir/export.json`, with `source` (the exported checkpoint) added.
    """
    model, preset, source = _trained(Path(run_dir), which)
    released = None
    kwargs = preset.lm_kwargs()
    if preset.weights is not None and is_released_dir(preset.weights):
        released = released_files(preset.weights)
        kwargs = lm_config(released, preset)
    elif preset.weights is not None:
        log.info("base weights %s are not a released folder: the LoRA form gets its own base",
                 preset.weights)
    info = export_moshi(model.cpu(), kwargs, out_dir, released)
    return {**info, "source": source}
