"""The whole pipeline: the stage order, the config section of each stage, and one runner.

Owns which stages exist and in which order, which config type each top-level section of a preset
holds (`ingest:`, `annotate:`, ... the same sections the single-stage commands read), and running a
chosen subset of the stages into one run directory (`duplexalign run`, and the sandbox demo after its
deployment). Each stage is `run(cfg, run_dir) -> StageStats` and skips itself when its config and
inputs are unchanged (`runs.StageRun`), so rerunning the pipeline after a change reruns only the
stages downstream of it. Stage modules are imported when their stage runs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from duplexalign.config import (
    StageConfig,
    apply_overrides,
    build,
    load_yaml,
    merge,
    split_overrides,
)
from duplexalign.errors import ConfigError
from duplexalign.runs import StageStats

log = logging.getLogger(__name__)

STAGES = ("ingest", "annotate", "pairs", "streams", "train", "evaluate", "report")
"""Every stage, in pipeline order."""
DEFAULT_STAGES = ("ingest", "annotate", "pairs", "streams", "train", "report")
"""What `duplexalign run` runs without `--stages`: `evaluate` needs benchmark data and a long
rollout, so it runs when asked for."""
ENGINE_STAGES = ("ingest", "annotate", "pairs", "streams", "evaluate")
"""The map-style stages, which take an `engine:` block (`engine.py`; `--engine ray`)."""

_CONFIGS = {
    "ingest": ("duplexalign.ingest.base", "IngestConfig"),
    "annotate": ("duplexalign.annotate.stage", "AnnotateConfig"),
    "pairs": ("duplexalign.pairs.config", "PairsConfig"),
    "streams": ("duplexalign.streams.stage", "StreamsConfig"),
    "train": ("duplexalign.train.stage", "TrainConfig"),
    "evaluate": ("duplexalign.evaluate.stage", "EvaluateConfig"),
    "report": ("duplexalign.report.stage", "ReportConfig"),
}


def config_type(stage: str) -> type[StageConfig]:
    """The config model of `stage` (the type of its top-level preset section)."""
    module, name = _CONFIGS[stage]
    return getattr(importlib.import_module(module), name)


def parse_stages(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"a,b"` (or a list) -> the stages in pipeline order; None = `DEFAULT_STAGES`."""
    if text is None:
        return DEFAULT_STAGES
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise ConfigError(f"--stages: unknown stage(s) {', '.join(map(repr, unknown))}; stages "
                          f"are {', '.join(STAGES)}" if unknown else "--stages: no stage given")
    return tuple(s for s in STAGES if s in names)


def load_configs(path: str | Path | None, overrides: Iterable[str] = (),
                 stages: Sequence[str] = DEFAULT_STAGES,
                 defaults: dict[str, dict[str, Any]] | None = None,
                 also_reads: Sequence[str] = ()) -> dict[str, StageConfig]:
    """The configs of `stages` from the preset's top-level sections, over `defaults`, with
    `SECTION.key=value` overrides applied.

    Every stage section present in the preset is validated, run or not, so a typo anywhere is
    found before hours of work. An override of a section that nothing in this command reads (a
    stage not in `stages` and not in `also_reads`) is an error that names it.

    Args:
        path: YAML preset, or None for defaults only.
        overrides: `--set` items, each with its section prefix.
        stages: the stages to run (their configs are returned).
        defaults: per-stage values under the preset (the sandbox's asset paths).
        also_reads: other sections the caller reads itself (the demo's `sandbox`).
    """
    data = load_yaml(path) if path else {}
    overrides = list(overrides)
    split_overrides(overrides, [*stages, *also_reads])  # raises on overrides nothing reads
    data = apply_overrides(data, overrides,
                           lambda key: config_type(key) if key in _CONFIGS else None)
    out: dict[str, StageConfig] = {}
    for stage in STAGES:
        if stage not in stages and stage not in data:
            continue
        sec = data.get(stage) or {}
        if not isinstance(sec, dict):
            raise ConfigError(f"{stage}: must be a mapping")
        cfg = build(config_type(stage), merge((defaults or {}).get(stage, {}), sec), prefix=stage)
        if stage in stages:
            out[stage] = cfg
    return out


def judge_rewriter(configs: dict[str, StageConfig]) -> Any | None:
    """The content judge's own rewriter (the sandbox oracle's), else None: the pairs stage then
    uses `pairs.rewriter`, or the endpoint annotate judged with (the local server by default),
    connected on its first use."""
    annotate = configs.get("annotate")
    if annotate is None or annotate.judge == "none":
        return None
    from duplexalign.judges.base import JUDGES

    own = getattr(JUDGES.get(annotate.judge), "rewriter", None)
    return own() if own is not None else None


def run(configs: dict[str, StageConfig], run_dir: str | Path,
        stages: Sequence[str] = DEFAULT_STAGES, validators: Sequence[Any] = (),
        environment: Any = None) -> dict[str, StageStats]:
    """Run `stages` in pipeline order into `run_dir`.

    Args:
        configs: stage -> config (`load_configs`); ingest's holds the input path.
        run_dir: the run directory (created by ingest).
        stages: which stages to run; each needs its upstream stage finished (here or before).
        validators: extra validation callbacks of the trainer (the sandbox's rollouts).
        environment: user streams of online training (`train.method: grpo`; the sandbox's
            simulated users); None = the trainer's default.

    Returns:
        stage -> its stats (`skipped` when it was already done with the same config and inputs).
    """
    out: dict[str, StageStats] = {}
    for stage in (s for s in STAGES if s in stages):
        cfg = configs[stage]
        module = importlib.import_module(f"duplexalign.{stage}.stage")
        if stage == "pairs":
            out[stage] = module.run(cfg, run_dir, rewriter=judge_rewriter(configs))
        elif stage == "train":
            out[stage] = module.run(cfg, run_dir, validators=list(validators),
                                    environment=environment)
        else:
            out[stage] = module.run(cfg, run_dir)
        log.info("%s: %s", stage, "already done (same config and inputs)" if out[stage].skipped
                 else "done")
    return out
