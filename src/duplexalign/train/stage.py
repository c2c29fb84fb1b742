"""The preference-training stage: `run(config, streams_dir, out_dir) -> StageStats`.

Owns the loop and nothing loss-specific: AdamW with warmup + cosine, gradient accumulation, clipping,
optional bf16 autocast, DDP or FSDP1 when launched by torchrun, reference log-probs (cached or live),
atomic checkpoints with exact resume, metrics (JSONL + TensorBoard), validation callbacks that keep the
best checkpoint on a composite metric and stop early. Losses come from `LOSSES` by name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist
from pydantic import Field
from torch import nn

from duplexalign.config import StageConfig
from duplexalign.errors import ConfigError
from duplexalign.models.lora import freeze_for_text_only, has_lora, lora_scale, param_groups
from duplexalign.models.presets import build_model, get_preset, load_model, save_model
from duplexalign.runs import RunDir, StageStats, digest_json, sha256_file
from duplexalign.streams.shards import INDEX_NAME, ShardReader
from duplexalign.train import checkpoint
from duplexalign.train.data import GlobalBatches, PairBatch, collate, count_pairs, shard_batch
from duplexalign.train.logprobs import ScoreConfig, score_pairs
from duplexalign.train.losses import LossParams, PreferenceLogps, combined_loss
from duplexalign.train.metrics import MetricsLog, step_metrics
from duplexalign.train.refcache import cache_key, compute_reference, load_or_compute, weights_digest
from duplexalign.train.validate import HeldOutPreferences, Validator, composite

log = logging.getLogger(__name__)


class ValConfig(StageConfig):
    """Validation: held-out pairs, composite metric, early stopping."""

    every: int = 0
    """Validate every N steps (0 = never)."""
    held_out: int = 0
    """The first N index rows are held out from training for preference accuracy/drift."""
    metric: dict[str, float] = Field(default_factory=lambda: {"val/accuracy": 1.0})
    """Composite score = sum(weight * metric); higher is better (use negative weights to minimise)."""
    patience: int = 0
    """Stop after N validations without improvement (0 = never stop early)."""


class TrainConfig(StageConfig):
    """Options of `duplexalign train` (YAML section `train:`)."""

    model: str = "tiny"
    model_updates: dict = Field(default_factory=dict)
    """Field updates of the model preset, e.g. {lora: {enabled: true, rank: 8}}."""
    init: Path | None = None
    """Start from a checkpoint saved by `save_model` (e.g. the sandbox instruct model)."""
    loss: dict[str, float] = Field(default_factory=lambda: {"dpo_ln": 1.0})
    """Loss terms by registered name with weights, e.g. {dpo_ln: 1.0, sft: 1.0}."""
    loss_params: LossParams = LossParams()
    score: ScoreConfig = ScoreConfig()
    context_nll_weight: float = 0.0
    """Weight of an NLL anchor on the chosen text of the context frames (the user's turn)."""
    reference: Literal["cached", "live"] = "cached"
    lr: float = 1e-5
    depth_lr: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_steps: int = 100
    batch_size: int = 16
    """Pairs per optimizer step over all ranks and micro-batches."""
    micro_batch_size: int = 4
    grad_clip: float = 1.0
    bf16: bool = False
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    distributed: Literal["ddp", "fsdp"] = "ddp"
    """Wrapper used when launched with torchrun (WORLD_SIZE > 1)."""
    val: ValConfig = ValConfig()


class _Scorer(nn.Module):
    """The module DDP/FSDP wrap: scores a pair batch with the policy."""

    def __init__(self, model: nn.Module, cfg: ScoreConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, chosen, rejected, window, split: int):
        s = score_pairs(self.model, chosen, rejected, window, split, self.cfg)
        return s.logps, s.lengths, s.context_logp


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def _dist() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _wrap(scorer: _Scorer, cfg: TrainConfig, world: int) -> nn.Module:
    if world == 1:
        return scorer
    if cfg.distributed == "ddp":
        return nn.parallel.DistributedDataParallel(scorer)
    from moshi.modules.transformer import StreamingTransformerLayer
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    return FSDP(scorer, auto_wrap_policy=ModuleWrapPolicy({StreamingTransformerLayer}),
                use_orig_params=True, device_id=torch.device("cpu"))


def _full_params(wrapped: nn.Module):
    """Context in which every rank sees the full parameters (FSDP), else a no-op."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if isinstance(wrapped, FSDP):
        return FSDP.summon_full_params(wrapped, writeback=False)
    return contextlib.nullcontext()


def run(cfg: TrainConfig, streams_dir: str | Path, out_dir: str | Path,
        validators: list[Validator] = ()) -> StageStats:
    """Train on the pairs of `streams_dir`; write checkpoints, metrics and the final model.

    Args:
        cfg: training options.
        streams_dir: streams directory (shards + pair index).
        out_dir: the stage directory (`RUN/train`): `ckpt/`, `best/`, `final/`, `metrics.jsonl`.
        validators: extra validation callbacks (rollout metrics), merged into the composite.
    """
    rank, world = _dist()
    out = Path(out_dir)
    stats = StageStats("train")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model = load_model(cfg.init) if cfg.init else build_model(get_preset(cfg.model,
                                                                         **cfg.model_updates))
    if cfg.score.audio_weight == 0:
        freeze_for_text_only(model)
    lora = has_lora(model)
    if cfg.reference == "live" and not lora:
        raise ConfigError("train.reference=live needs LoRA (the LoRA-off model is the reference); "
                          "use train.reference=cached for full fine-tuning")
    scorer = _Scorer(model, cfg.score)

    def ref_score(batch: PairBatch):
        with torch.no_grad(), lora_scale(model, 0.0):
            return score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split,
                               cfg.score)

    ckpt_root = out / "ckpt"
    last = checkpoint.latest(ckpt_root)
    key = cache_key(weights_digest(model), streams_dir, cfg.score)
    ref_table = load_or_compute(out / "refcache", key,
                                lambda: compute_reference(ref_score, streams_dir,
                                                          cfg.micro_batch_size),
                                can_compute=lora or last is None)
    opt = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.depth_lr, cfg.weight_decay),
                            betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    step, best, since_best, pos = 0, -math.inf, 0, {"epoch": 0, "consumed": 0}
    if last is not None:
        extra, state = checkpoint.load(last, model)
        opt.load_state_dict(extra["optim"])
        sched.load_state_dict(extra["sched"])
        torch.set_rng_state(extra["rng"])
        step, pos = state["step"], state["data"]
        best, since_best = state["best"], state["since_best"]
        log.info("resumed from %s (step %d)", last, step)
    wrapped = _wrap(scorer, cfg, world)
    held = list(range(cfg.val.held_out))
    data = GlobalBatches(streams_dir, cfg.batch_size, cfg.seed, pos["epoch"], pos["consumed"],
                         skip_rows=len(held))
    reader = ShardReader(streams_dir)
    vals: list[Validator] = list(validators)
    if held:
        vals.insert(0, HeldOutPreferences(
            streams_dir, held, lambda m, b: ref_free_score(m, b, cfg.score), ref_table,
            cfg.micro_batch_size))
    mlog = MetricsLog(out, enabled=rank == 0)
    stop = False
    while step < cfg.max_steps and not stop:
        items = data.next()
        per_example = []
        for micro in shard_batch(items, rank, world, cfg.micro_batch_size):
            batch = collate(reader, micro)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logps, lengths, ctx_lp = wrapped(batch.chosen, batch.rejected, batch.window,
                                                 batch.split)
            b = len(batch)
            ref = ref_table[batch.rows]
            if cfg.reference == "live":
                s = ref_score(batch)
                ref = torch.stack([s.logps[:b], s.logps[b:]], 1).double()
            lp = PreferenceLogps(logps[:b].float(), logps[b:].float(), ref[:, 0].float(),
                                 ref[:, 1].float(), lengths[:b].float(), lengths[b:].float())
            out_l = combined_loss(cfg.loss, lp, cfg.loss_params)
            loss = out_l.loss - cfg.context_nll_weight * ctx_lp.float()
            (loss.sum() * world / cfg.batch_size).backward()
            per_example.append((batch.categories, loss.detach(), out_l, lp))
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        metrics = step_metrics(per_example, world)
        metrics.update({"grad_norm": float(gnorm), "lr": sched.get_last_lr()[0]})
        mlog.write(step, metrics)
        if cfg.val.every and step % cfg.val.every == 0 and vals:
            vm: dict[str, float] = {}
            for v in vals:
                vm.update(v(model, step))
            score = composite(vm, cfg.val.metric)
            mlog.write(step, {**vm, "val/composite": score})
            if score > best:
                best, since_best = score, 0
                with _full_params(wrapped):
                    if rank == 0:
                        save_model(model, out / "best")
                        (out / "best" / "step.json").write_text(json.dumps({"step": step,
                                                                            "score": score}))
            else:
                since_best += 1
                stop = bool(cfg.val.patience) and since_best >= cfg.val.patience
        due = step % cfg.checkpoint_every == 0 or step == cfg.max_steps or stop
        # FSDP keeps sharded optimizer state: resumable checkpoints are written for 1 process/DDP
        if due and rank == 0 and (world == 1 or cfg.distributed == "ddp"):
            checkpoint.save(ckpt_root, step, model,
                            {"optim": opt.state_dict(), "sched": sched.state_dict(),
                             "rng": torch.get_rng_state()},
                            {"step": step, "data": data.position(), "best": best,
                             "since_best": since_best}, cfg.keep_checkpoints)
        if world > 1:
            dist.barrier()
    with _full_params(wrapped):
        if rank == 0:
            save_model(model, out / "final")
    stats.add("steps", step)
    stats.values.update({"stopped_early": stop, "best_composite": best,
                         "pairs": count_pairs(streams_dir)})
    return stats


def ref_free_score(model: nn.Module, batch: PairBatch, cfg: ScoreConfig):
    """Score a batch with the current policy (no gradient); used by held-out validation."""
    return score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split, cfg)


def run_stage(cfg: TrainConfig, run_dir: str | Path, validators: list[Validator] = ()) -> StageStats:
    """Run the stage inside a run directory: reads `RUN/streams`, writes `RUN/train`."""
    rd = RunDir(run_dir, create=False)
    rd.require_done("train", "streams", "no finished RUN/streams")
    digest = digest_json(cfg.model_dump(mode="json"))
    if rd.is_done("train", digest):
        log.info("train already done for this config; skipping")
        return StageStats("train", skipped=True)
    stats = run(cfg, rd.path("streams"), rd.path("train"), validators)
    if int(os.environ.get("RANK", "0")) == 0:
        rd.write_provenance("train", cfg, {"index": sha256_file(rd.path("streams") / INDEX_NAME)})
        rd.write_stats(stats)
        rd.mark_done("train", digest)
    return stats
