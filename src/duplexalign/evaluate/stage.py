"""The evaluate stage: run registered tasks on a checkpoint and write results with provenance.

Owns `EvaluateConfig`, loading the checkpoint's model, tokenizer, codec, user voice and optional ASR /
judge backends, and the per-task loop: prompts -> user streams -> batched rollouts -> per-sample
scores (`<task>/samples.jsonl`, one line per sample with its words, scores and sampling record; a
two-channel wav per sample under `<task>/audio/`) -> aggregate estimates (`<task>/result.json`),
then `results.json` over all tasks. A task whose DONE marker matches the config digest is skipped,
so rerunning is a no-op. `evaluate_items` is the same scoring as a library call on user streams the
caller built itself (the sandbox's held-out scenarios, the trainer's validation callback).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.engine import EngineConfig, ordered_map
from duplexalign.errors import ConfigError
from duplexalign.evaluate.metrics import DEFAULT_RESAMPLES
from duplexalign.evaluate.rollout import (
    Rollout,
    SamplingConfig,
    UserItem,
    rollout,
    rollout_batch,
    write_stereo,
)
from duplexalign.evaluate.tasks import TASKS, resolve_tasks
from duplexalign.evaluate.tasks.base import Task, TaskContext
from duplexalign.evaluate.tasks.reply_length import aggregate_lengths, length_fields
from duplexalign.evaluate.turns import TimingRules
from duplexalign.judges.endpoint import LLMEndpoint
from duplexalign.runs import (
    RunDir,
    StageStats,
    atomic_write_text,
    digest_json,
    git_hash,
    package_versions,
    sha256_file,
)

log = logging.getLogger(__name__)

STAGE = "evaluate"


def default_data_dir() -> Path:
    """`$DUPLEXALIGN_DATA`, else `../shared/data` next to the source checkout."""
    env = os.environ.get("DUPLEXALIGN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


class CodecSettings(StageConfig):
    """Which codec encodes the user's speech and decodes the model's audio."""

    name: str = "melrvq"
    path: Path | None = None
    """Local codec file (MelRVQ safetensors, Mimi weights)."""


class EvaluateConfig(StageConfig):
    """Options of `duplexalign evaluate` (section `evaluate:` of a preset).

    Attributes:
        checkpoint: the model directory to evaluate (`models.presets.save_model`); None = the run's
            `train/best` when it exists, else `train/final`.
        tasks: task or group names (`spoken_qa`, `safety`, `paper`), comma-separated or a list.
        data_dir: benchmark data folder; None = `default_data_dir()`.
        limit: at most this many prompts per task (None = each task's default).
        sampling: LMGen sampling settings and seed.
        voice: the user voice (held-out voices by default).
        codec: the model's codec.
        tokenizer: the text-stream SentencePiece model; None = the checkpoint preset's tokenizer.
        asr: ASR backend name to also score the model's audio (e.g. "whisper"), or None.
        judge: LLM judge endpoint of the multiturn task and of `--fdb`'s judged columns; without
            `judge.url` the offline local server is started for the task and stopped after it.
        rules: timing thresholds.
        answer_tolerance: seconds before the question end that still count as answer.
        answer_seconds: silence after the user's last turn left for the answer.
        alert_path: local ALERT JSONL (not bundled).
        resamples: bootstrap resamples; seed: bootstrap seed.
        decode_audio: decode the model's audio codes with the codec (needed for ASR scoring and
            for the model channel of the wavs; Griffin-Lim decoding of MelRVQ is slow on CPU).
        write_audio: write a two-channel wav per sample.
        device: auto (cuda when a GPU is visible, else cpu), cpu, cuda or cuda:N; the model and
            its LMGen rollouts run there.
        options: per-task extra options, e.g. {multiturn: {turn_gap: 12}}.
        engine: where the rollout batches run (`engine.py`): on `ray` each worker loads the
            model once (`gpus_per_worker` for GPU nodes); scoring stays in the driver.
    """

    checkpoint: Path | None = None
    tasks: str | list[str] = "paper"
    data_dir: Path | None = None
    limit: int | None = Field(None, ge=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    voice: str = "user_6"
    codec: CodecSettings = Field(default_factory=CodecSettings)
    tokenizer: Path | None = None
    asr: str | None = None
    judge: LLMEndpoint = Field(default_factory=LLMEndpoint)
    rules: TimingRules = Field(default_factory=TimingRules)
    answer_tolerance: float = Field(0.5, ge=0)
    answer_seconds: float = Field(8.0, gt=0)
    alert_path: Path | None = None
    resamples: int = Field(DEFAULT_RESAMPLES, ge=10)
    seed: int = 0
    decode_audio: bool = True
    write_audio: bool = True
    device: str = "auto"
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    engine: EngineConfig = Field(default_factory=EngineConfig)


def make_context(cfg: EvaluateConfig, asr: Any | None = None, judge: Any | None = None
                 ) -> TaskContext:
    """The `TaskContext` of a config (backends passed in, or None)."""
    return TaskContext(data_dir=Path(cfg.data_dir or default_data_dir()), limit=cfg.limit, asr=asr,
                       judge=judge, judge_endpoint=cfg.judge, rules=cfg.rules, answer_tolerance=cfg.answer_tolerance,
                       answer_seconds=cfg.answer_seconds,
                       alert_path=cfg.alert_path, resamples=cfg.resamples, seed=cfg.seed,
                       options=cfg.options)


def sample_record(task: Task, r: Rollout, scores: dict[str, Any]) -> dict[str, Any]:
    """The JSONL line of one sample: ids, both channels' words, scores, lengths, sampling."""
    meta = {k: v for k, v in r.item.meta.items() if k not in ("golds",)}
    return {
        "id": r.id, "task": task.name, "duration": r.duration,
        "words": {"model": [w.to_dict() for w in r.model_words],
                  "user": [w.to_dict() for w in r.item.user_words]},
        "text_tokens": r.text_tokens.tolist(), "meta": meta, "scores": scores,
        "sampling": r.sampling,
    }


def score_rollouts(task: Task, rollouts: Sequence[Rollout], ctx: TaskContext
                   ) -> list[dict[str, Any]]:
    """Per-sample scores of `task` plus reply-length fields for each rollout."""
    many = getattr(task, "score_many", None)
    scores = many(rollouts, ctx) if many else [task.score(r, ctx) for r in rollouts]
    lengths = [length_fields(r, ctx.rules.model_merge_gap) for r in rollouts]
    return [{**s, "_length": ln} for s, ln in zip(scores, lengths, strict=True)]


def aggregate_task(task: Task, scores: Sequence[dict[str, Any]], ctx: TaskContext
                   ) -> dict[str, Any]:
    """The result section of one task: metrics with CIs, reply lengths, extras, direction."""
    metrics = {k: v.to_dict() for k, v in task.aggregate(scores, ctx).items()}
    if task.name != "reply_length":
        for k, v in aggregate_lengths([s["_length"] for s in scores], ctx).items():
            metrics[f"length/{k}"] = v.to_dict()
    return {"metrics": metrics, "num_samples": len(scores), "primary": task.primary,
            "group": task.group, "higher_is_better": task.higher_is_better,
            "extras": task.extras(ctx)}


def evaluate_items(model: Any, tokenizer: Any, items: Sequence[UserItem], tasks: Sequence[str],
                   ctx: TaskContext, sampling: SamplingConfig | None = None,
                   codec: Any | None = None, progress: bool = False) -> dict[str, Any]:
    """Roll `items` out once and score them with each of `tasks` (library entry point).

    Args:
        model: a moshi `LMModel`.
        tokenizer: its text-stream tokenizer.
        items: user streams with the metadata the tasks need (e.g. `golds` for QA, `label` for
            XSTest; timing infers pauses and turn ends from the user words when not annotated).
        tasks: registered task names.
        ctx: scoring context.
        sampling: rollout settings.
        codec: decodes the model's audio when given (needed for ASR scoring).
        progress: progress bars.

    Returns:
        {task: {"metrics": ..., "samples": [per-sample scores]}, "_rollouts": [Rollout]}.
    """
    rolls = rollout(model, items, tokenizer, sampling, codec=codec, progress=progress)
    out: dict[str, Any] = {"_rollouts": rolls}
    for name in tasks:
        task = TASKS.get(name)
        scores = score_rollouts(task, rolls, ctx)
        out[name] = {**aggregate_task(task, scores, ctx), "samples": scores}
    return out


def _load_backends(cfg: EvaluateConfig, checkpoint: Path, names: Sequence[str]) -> dict[str, Any]:
    from duplexalign.models.device import resolve_device
    from duplexalign.models.presets import load_model
    from duplexalign.speech.base import ASR_BACKENDS, CODECS
    from duplexalign.speech.voices import get_voice
    from duplexalign.streams.tokenizer import load_tokenizer

    model = load_model(checkpoint, device=resolve_device(cfg.device, "evaluate.device"))
    tok_path = cfg.tokenizer or getattr(model.duplexalign_preset, "tokenizer", None)
    if tok_path is None:
        raise ConfigError("evaluate.tokenizer: the checkpoint's preset names no tokenizer; give the "
                          "SentencePiece model path")
    codec = CODECS.get(cfg.codec.name)(path=cfg.codec.path)
    if codec.num_codebooks < model.dep_q:
        raise ConfigError(f"evaluate.codec: {cfg.codec.name} has {codec.num_codebooks} codebooks, "
                          f"the model needs {model.dep_q}")
    judge = None
    if "multiturn" in names and cfg.judge.url:
        from contextlib import ExitStack

        from duplexalign.judges.endpoint import open_client

        judge = open_client(cfg.judge, ExitStack())  # a URL is set: no server to own
    return {"model": model, "tokenizer": load_tokenizer(tok_path), "codec": codec,
            "tts": get_voice(cfg.voice), "asr": ASR_BACKENDS.get(cfg.asr)() if cfg.asr else None,
            "judge": judge, "tokenizer_path": str(tok_path)}


def checkpoint_of(cfg: EvaluateConfig, run_dir: str | Path) -> Path:
    """The checkpoint to evaluate: `cfg.checkpoint`, else the run's `train/best` or `train/final`."""
    if cfg.checkpoint is not None:
        return Path(cfg.checkpoint)
    best = Path(run_dir) / "train" / "best"
    return best if (best / "model.safetensors").exists() else Path(run_dir) / "train" / "final"


def run(cfg: EvaluateConfig, run_dir: str | Path) -> StageStats:
    """Evaluate the checkpoint (`checkpoint_of`) on `cfg.tasks`; write `results.json` and per-task
    files in `run_dir`.

    Args:
        cfg: evaluation options.
        run_dir: output directory (a run directory: stats, provenance and a DONE marker per task,
            each keyed on the config and the checkpoint's digest, so a new checkpoint reruns).

    Returns:
        Stage statistics (samples per task, tasks skipped as already done).
    """
    from duplexalign.evaluate.speak import user_items

    checkpoint = checkpoint_of(cfg, run_dir)
    names = resolve_tasks(cfg.tasks)
    run_dir = RunDir(run_dir)
    stats = StageStats(STAGE)
    ckpt_digest = _checkpoint_digest(checkpoint)
    pending: dict[str, str] = {}
    for name in names:
        digest = digest_json({"cfg": cfg.model_dump(mode="json",
                                                    exclude={"tasks", "checkpoint", "engine"}),
                              "ckpt": ckpt_digest,
                              "task": name})
        if run_dir.is_done(f"{STAGE}.{name}", digest) and run_dir.path(f"{name}/result.json"
                                                                      ).is_file():
            stats.add(f"skipped/{name}")
        else:
            pending[name] = digest
    if pending:
        backends = _load_backends(cfg, checkpoint, list(pending))
        ctx = make_context(cfg, asr=backends["asr"], judge=backends["judge"])
        items = {n: user_items(TASKS.get(n).prompts(ctx), backends["tts"], backends["codec"])
                 for n in pending}
        # One rollout over every pending task's items, longest first: batches mix tasks and
        # padding stays small.
        flat = sorted(((n, it) for n in pending for it in items[n]),
                      key=lambda x: -x[1].num_frames)
        rolls = _rollouts(cfg, checkpoint, backends, [it for _, it in flat])
        by_task: dict[str, dict[str, Rollout]] = {n: {} for n in pending}
        for (n, it), r in zip(flat, rolls, strict=True):
            by_task[n][it.id] = r
        for name, digest in pending.items():
            task = TASKS.get(name)
            task_rolls = [by_task[name][it.id] for it in items[name]]
            _finish_task(task, task_rolls, ctx, cfg, run_dir, backends, checkpoint, ckpt_digest)
            run_dir.mark_done(f"{STAGE}.{name}", digest)
            stats.add(f"samples/{name}", len(task_rolls))
    results = collect_results(run_dir, names, cfg, checkpoint, ckpt_digest)
    atomic_write_text(run_dir.path("results.json"), json.dumps(results, indent=2, sort_keys=True))
    run_dir.write_provenance(STAGE, cfg, {"checkpoint": ckpt_digest})
    stats.values["tasks"] = names
    run_dir.write_stats(stats)
    return stats


class RolloutWorker:
    """Rollout batches on the ray engine: holds the model, its tokenizer and the codec (loaded
    once per worker, on `evaluate.device`) and runs `rollout_batch`.

    Args:
        cfg: evaluation options.
        checkpoint: the model directory.
        tokenizer: the text-stream SentencePiece model.
    """

    def __init__(self, cfg: EvaluateConfig, checkpoint: Path, tokenizer: str):
        from duplexalign.models.device import resolve_device
        from duplexalign.models.presets import load_model
        from duplexalign.speech.base import CODECS
        from duplexalign.streams.tokenizer import load_tokenizer

        self.cfg = cfg
        self.model = load_model(checkpoint, device=resolve_device(cfg.device, "evaluate.device"))
        self.tok = load_tokenizer(tokenizer)
        self.codec = CODECS.get(cfg.codec.name)(path=cfg.codec.path) if cfg.decode_audio else None

    def __call__(self, batch: tuple[int, list[UserItem]]) -> list[Rollout]:
        """`(index, items)` -> their rollouts."""
        return rollout_batch(self.model, batch[1], batch[0], self.tok, self.cfg.sampling,
                             self.codec)


def _rollouts(cfg: EvaluateConfig, checkpoint: Path, backends: dict[str, Any],
              items: list[UserItem]) -> list[Rollout]:
    """Every item's rollout, in order: in this process, or batch by batch on the ray engine
    (each batch keeps its seed, so the rollouts are the same)."""
    if cfg.engine.kind == "local":
        return rollout(backends["model"], items, backends["tokenizer"], cfg.sampling,
                       codec=backends["codec"] if cfg.decode_audio else None)
    bs = cfg.sampling.batch_size
    batches = [(bi, items[s:s + bs]) for bi, s in enumerate(range(0, len(items), bs))]
    make = partial(RolloutWorker, cfg, checkpoint, backends["tokenizer_path"])
    return [r for part in ordered_map(cfg.engine, make, batches, desc="rollouts") for r in part]


def _finish_task(task: Task, rolls: Sequence[Rollout], ctx: TaskContext, cfg: EvaluateConfig,
                 run_dir: RunDir, backends: dict[str, Any], checkpoint: Path, ckpt_digest: str
                 ) -> None:
    """Score one task's rollouts and write its samples, wavs and result."""
    scores = score_rollouts(task, rolls, ctx)
    task_dir = run_dir.path(task.name)
    lines = []
    for r, s in zip(rolls, scores, strict=True):
        rec = sample_record(task, r, s)
        if cfg.write_audio:
            wav = write_stereo(task_dir / "audio" / f"{r.id}.wav", r)
            rec["audio"] = None if wav is None else str(wav.relative_to(run_dir.root))
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_text(task_dir / "samples.jsonl", "\n".join(lines) + "\n")
    result = {**aggregate_task(task, scores, ctx), "checkpoint": str(checkpoint),
              "checkpoint_digest": ckpt_digest, "voice": cfg.voice,
              "tokenizer": backends["tokenizer_path"], "codec": cfg.codec.model_dump(mode="json"),
              "sampling": cfg.sampling.model_dump(), "rules": cfg.rules.model_dump()}
    atomic_write_text(task_dir / "result.json", json.dumps(result, indent=2, sort_keys=True))
    log.info("%s: %d samples, %s = %s", task.name, len(scores), task.primary,
             result["metrics"].get(task.primary, {}).get("value"))


def collect_results(run_dir: RunDir, names: Sequence[str], cfg: EvaluateConfig, checkpoint: Path,
                    ckpt_digest: str) -> dict[str, Any]:
    """`results.json`: each task's result plus the run's provenance (the config without its
    `engine`, which does not change results: provenance.json keeps it)."""
    tasks = {n: json.loads(run_dir.path(f"{n}/result.json").read_text()) for n in names}
    return {"checkpoint": str(checkpoint), "checkpoint_digest": ckpt_digest, "tasks": tasks,
            "config": cfg.model_dump(mode="json", exclude={"engine"}), "git": git_hash(),
            "packages": package_versions()}


def _checkpoint_digest(checkpoint: Path) -> str:
    files = sorted(p for p in checkpoint.glob("*") if p.is_file()) if checkpoint.is_dir() else []
    if not files:
        raise ConfigError(f"checkpoint {checkpoint} is not a model directory")
    return digest_json({p.name: sha256_file(p) for p in files})
