"""The preference-training stage: `run(config, run_dir) -> StageStats` (`fit` is the loop itself).

Owns the loop and nothing loss-specific: AdamW with warmup + cosine, gradient accumulation, clipping,
bf16 autocast (default on CUDA), DDP or FSDP1 when launched by torchrun (NCCL on CUDA, gloo on CPU),
reference log-probs (cached or live), atomic checkpoints with exact resume, metrics (JSONL +
TensorBoard), validation callbacks that keep the best checkpoint on a composite metric and stop early.
Losses come from `LOSSES` by name; the device comes from `models.device`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import Field, field_validator, model_validator
from torch import nn
from tqdm import tqdm

from duplexalign.config import StageConfig
from duplexalign.errors import ConfigError
from duplexalign.models import device as devices
from duplexalign.models.lora import freeze_for_text_only, has_lora, lora_scale, param_groups
from duplexalign.models.presets import (
    ModelPreset,
    build_model,
    load_model,
    resolve_model,
    save_model,
)
from duplexalign.runs import StageRun, StageStats
from duplexalign.streams.shards import INDEX_NAME, ShardReader
from duplexalign.train import checkpoint
from duplexalign.train.compat import check_streams_fit
from duplexalign.train.data import GlobalBatches, PairBatch, collate, count_pairs, shard_batch
from duplexalign.train.grpo import GRPOConfig
from duplexalign.train.logprobs import ScoreConfig, WindowScores, score_pairs
from duplexalign.train.losses import LossParams, PreferenceLogps, combined_loss
from duplexalign.train.metrics import MetricsLog, step_metrics
from duplexalign.train.refcache import (
    cache_key,
    compute_reference,
    load_or_compute,
    streams_digest,
    weights_digest,
)
from duplexalign.train.schedule import warmup_cosine
from duplexalign.train.validate import (
    HeldOutPreferences,
    Validator,
    save_best,
    track_best,
    validate,
)

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

    method: Literal["dpo", "grpo"] = "dpo"
    """"dpo": offline preference training on RUN/streams (this module); "grpo": online GRPO on
    the text stream against replayed or simulated users (`train/grpo.py`, options in `grpo`)."""
    grpo: GRPOConfig = GRPOConfig()
    """Options of `method: grpo` (group size, clipping, KL, credit, reward weights, judge)."""
    model: str | dict[str, Any] = "tiny"
    """A preset name, or `{preset: NAME, <preset field>: value, ...}`, e.g. `{preset: moshi_7b,
    weights: /models/moshiko, gradient_checkpointing: true, lora: {rank: 64}}`; on the command line
    `--set model.preset=moshi_7b --set model.weights=DIR`."""
    device: str = "auto"
    """auto (cuda:LOCAL_RANK when a GPU is visible, else cpu), cpu, cuda or cuda:N."""
    init: Path | None = None
    """Start from a checkpoint saved by `save_model` (e.g. the sandbox instruct model)."""
    loss: dict[str, float] = Field(default_factory=lambda: {"dpo_ln": 1.0})
    """Loss terms by registered name with weights, e.g. {dpo_ln: 1.0, sft: 1.0}."""
    loss_params: LossParams = LossParams()
    score: ScoreConfig = ScoreConfig()
    floor_anchor_weight: float = 0.0
    """Weight of the "user holds the floor" anchor: NLL of PAD on the chosen text at the frames
    where the user holds the floor (speaking or in a mid-turn pause) and the model is silent,
    over context and window (floor labels of the shards; `train/logprobs.floor_logp`)."""
    reference: Literal["cached", "live"] = "cached"
    reference_init: Path | None = None
    """Checkpoint whose log-probs are the (cached) reference; None = the starting model (`init`).
    On-policy rounds set it to the base model to keep the first round's reference."""
    lr: float = 1e-5
    depth_lr: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_steps: int = 100
    batch_size: int = 16
    """Pairs per optimizer step over all ranks and micro-batches."""
    micro_batch_size: int = 4
    grad_clip: float = 1.0
    bf16: bool | None = None
    """bf16 autocast; None = on for CUDA, off for CPU."""
    compile: bool = False
    """torch.compile the scoring module (off by default: moshi's streaming state mutates inside
    the shared-context path, and moshi-finetune users report multi-GPU failures under compile)."""
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    distributed: Literal["ddp", "fsdp"] = "ddp"
    """Wrapper used when launched with torchrun (WORLD_SIZE > 1)."""
    val: ValConfig = ValConfig()

    @field_validator("model", mode="before")
    @classmethod
    def _check_model(cls, v: Any) -> Any:
        resolve_model(v)  # unknown preset names or preset fields fail at config time
        return v

    @model_validator(mode="after")
    def _check_checkpointing(self) -> TrainConfig:
        if self.score.share_context and resolve_model(self.model).gradient_checkpointing:
            raise ValueError("model.gradient_checkpointing cannot be combined with the shared "
                             "context path; set score.share_context=false as well")
        return self

    @model_validator(mode="after")
    def _check_grpo(self) -> TrainConfig:
        if self.method == "grpo" and self.grpo.judge == "none" \
                and self.grpo.rewards.weights.get("content"):
            raise ValueError("train.grpo.judge=none gives no content reward: set "
                             "train.grpo.judge (llm, or oracle in the sandbox) or "
                             "train.grpo.rewards.weights.content=0")
        if self.grpo.llm is not None and self.grpo.judge != "llm":
            raise ValueError(f"train.grpo.llm is only read by train.grpo.judge=llm (judge is "
                             f"{self.grpo.judge}): set train.grpo.judge=llm or drop train.grpo.llm")
        return self

    def preset(self) -> ModelPreset:
        """The resolved model preset."""
        return resolve_model(self.model)


class _Scorer(nn.Module):
    """The module DDP/FSDP wrap: scores a pair batch with the policy."""

    def __init__(self, model: nn.Module, cfg: ScoreConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, chosen, rejected, window, split: int, floor=None):
        s = score_pairs(self.model, chosen, rejected, window, split, self.cfg, floor)
        return s.logps, s.lengths, s.floor_logp


def _dist(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        devices.set_current(device)
        dist.init_process_group(devices.dist_backend(device))
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _wrap(scorer: _Scorer, cfg: TrainConfig, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return scorer
    if cfg.distributed == "ddp":
        return nn.parallel.DistributedDataParallel(
            scorer, device_ids=[device] if device.type == "cuda" else None)
    # FSDP1, not FSDP2 `fully_shard`: moshi's StreamingModule lists abc.ABC before nn.Module, so
    # fully_shard's class swap raises TypeError on moshi modules (reference/moshi.md B2); FSDP2 would
    # need a plain-module shell per layer. FSDP1 with use_orig_params mixes frozen base weights and
    # trainable LoRA tensors in one flat unit, which LoRA runs need.
    from moshi.modules.transformer import StreamingTransformerLayer
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import MixedPrecision
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    mp = None
    if devices.use_bf16(device, cfg.bf16):  # bf16 compute and all-gathers, fp32 gradient reduction
        mp = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                            buffer_dtype=torch.bfloat16)
    return FSDP(scorer, auto_wrap_policy=ModuleWrapPolicy({StreamingTransformerLayer}),
                use_orig_params=True, device_id=device, mixed_precision=mp)


def _on(batch: PairBatch, device: torch.device) -> PairBatch:
    """`batch` with its tensors on `device` (collate builds them on the CPU)."""
    if device.type == "cpu":
        return batch
    return dataclasses.replace(batch, chosen=batch.chosen.to(device),
                               rejected=batch.rejected.to(device),
                               window=batch.window.to(device),
                               floor=None if batch.floor is None else batch.floor.to(device))


def _full_params(wrapped: nn.Module):
    """Context in which every rank sees the full parameters (FSDP), else a no-op."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    if isinstance(wrapped, FSDP):
        return FSDP.summon_full_params(wrapped, writeback=False)
    return contextlib.nullcontext()


def fit(cfg: TrainConfig, streams_dir: str | Path, out_dir: str | Path,
        validators: list[Validator] = ()) -> StageStats:
    """Train on the pairs of `streams_dir`; write checkpoints, metrics and the final model.

    Args:
        cfg: training options.
        streams_dir: streams directory (shards + pair index).
        out_dir: the stage directory (`RUN/train`): `ckpt/`, `best/`, `final/`, `metrics.jsonl`.
        validators: extra validation callbacks (rollout metrics), merged into the composite.
    """
    device = devices.resolve_device(cfg.device, "train.device")
    rank, world = _dist(device)
    bf16 = devices.use_bf16(device, cfg.bf16)
    out = Path(out_dir)
    stats = StageStats("train")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    # FSDP moves each wrapped unit to the device itself, so the full model never sits on one GPU
    build_on = torch.device("cpu") if world > 1 and cfg.distributed == "fsdp" else device
    model = (load_model(cfg.init, device=build_on) if cfg.init
             else build_model(cfg.preset(), device=build_on))
    check_streams_fit(streams_dir, model.duplexalign_preset)
    if cfg.score.audio_weight == 0:
        freeze_for_text_only(model)
    lora = has_lora(model)
    if cfg.reference == "live" and not lora:
        raise ConfigError("train.reference=live needs LoRA (the LoRA-off model is the reference); "
                          "use train.reference=cached for full fine-tuning")
    scorer = _Scorer(model, cfg.score)
    if cfg.reference_init is not None and cfg.reference == "live":
        raise ConfigError("train.reference_init needs train.reference=cached")
    ref_model = (load_model(cfg.reference_init, device=device)
                 if cfg.reference_init is not None else model)

    def score_batch(batch: PairBatch) -> WindowScores:
        """Scores through the wrapped module (FSDP gathers the shards), on the run's device."""
        batch = _on(batch, device)
        with devices.autocast(device, bf16):
            return WindowScores(*wrapped(batch.chosen, batch.rejected, batch.window, batch.split,
                                         batch.floor))

    def ref_score(batch: PairBatch) -> WindowScores:
        if ref_model is model:
            with torch.no_grad(), lora_scale(model, 0.0):
                return score_batch(batch)
        batch = _on(batch, device)
        with torch.no_grad(), lora_scale(ref_model, 0.0), devices.autocast(device, bf16):
            return score_pairs(ref_model, batch.chosen, batch.rejected, batch.window, batch.split,
                               cfg.score)

    ckpt_root = out / "ckpt"
    last = checkpoint.latest(ckpt_root)
    key = cache_key(weights_digest(ref_model), streams_dir, cfg.score)  # the starting weights
    opt = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.depth_lr, cfg.weight_decay),
                            betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, cfg.max_steps))
    step, best, since_best, pos = 0, -math.inf, 0, {"epoch": 0, "consumed": 0}
    if last is not None:
        extra, state = checkpoint.load(last, model)
        opt.load_state_dict(extra["optim"])
        sched.load_state_dict(extra["sched"])
        torch.set_rng_state(extra["rng"])
        step, pos = state["step"], state["data"]
        best, since_best = state["best"], state["since_best"]
        log.info("resumed from %s (step %d)", last, step)
    sharded = _wrap(scorer, cfg, world, device)
    wrapped = torch.compile(sharded) if cfg.compile else sharded
    ref_table = load_or_compute(out / "refcache", key,
                                lambda: compute_reference(ref_score, streams_dir,
                                                          cfg.micro_batch_size),
                                can_compute=lora or last is None
                                or cfg.reference_init is not None).to(device)
    held = list(range(cfg.val.held_out))
    data = GlobalBatches(streams_dir, cfg.batch_size, cfg.seed, pos["epoch"], pos["consumed"],
                         skip_rows=len(held))
    reader = ShardReader(streams_dir)
    vals: list[Validator] = list(validators)
    if held:
        vals.insert(0, HeldOutPreferences(
            streams_dir, held, lambda _, b: score_batch(b), ref_table, cfg.micro_batch_size))
    mlog = MetricsLog(out, enabled=rank == 0)
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step",
               disable=None if rank == 0 else True)
    stop = False
    while step < cfg.max_steps and not stop:
        items = data.next()
        per_example = []
        for micro in shard_batch(items, rank, world, cfg.micro_batch_size):
            batch = collate(reader, micro)
            if cfg.floor_anchor_weight and batch.floor is None:
                raise ConfigError("train.floor_anchor_weight > 0 needs floor labels in the "
                                  "shards: rerun `duplexalign streams` with this version")
            s_pol = score_batch(batch)
            logps, lengths, floor_lp = s_pol.logps, s_pol.lengths, s_pol.floor_logp
            b = len(batch)
            ref = ref_table[batch.rows.to(device)]
            if cfg.reference == "live":
                s = ref_score(batch)
                ref = torch.stack([s.logps[:b], s.logps[b:]], 1).double()
            lp = PreferenceLogps(logps[:b].float(), logps[b:].float(), ref[:, 0].float(),
                                 ref[:, 1].float(), lengths[:b].float(), lengths[b:].float())
            out_l = combined_loss(cfg.loss, lp, cfg.loss_params)
            loss = out_l.loss - cfg.floor_anchor_weight * floor_lp.float()
            (loss.sum() * world / len(items)).backward()  # < batch_size when data is short
            per_example.append((batch.categories, loss.detach(), out_l, lp))
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        metrics = step_metrics(per_example, world)
        metrics.update({"grad_norm": float(gnorm), "lr": sched.get_last_lr()[0]})
        mlog.write(step, metrics)
        if cfg.val.every and step % cfg.val.every == 0 and vals:
            vm, score = validate(vals, model, step, cfg.val.metric)
            mlog.write(step, {**vm, "val/composite": score})
            best, since_best, stop = track_best(score, best, since_best, cfg.val.patience)
            if since_best == 0:
                with _full_params(sharded):
                    if rank == 0:
                        save_best(model, out, step, score)
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
    bar.close()
    with _full_params(sharded):
        if rank == 0:
            save_model(model, out / "final")
    stats.add("steps", step)
    stats.values.update({"stopped_early": stop, "best_composite": best,
                         "pairs": count_pairs(streams_dir)})
    return stats


def claim_dir(train_dir: Path, digest: str, cfg: TrainConfig) -> None:
    """Tie `train_dir` to one (config, input) digest: checkpoints of another digest (older data or
    options) must not be resumed, so their folder is moved aside to `train.old-<digest>`. The
    resolved config is stored next to them (`export` rebuilds a checkpoint's model from it)."""
    owner = train_dir / "digest"
    if train_dir.exists() and owner.exists() and owner.read_text().strip() != digest:
        old = train_dir.with_name(f"train.old-{owner.read_text().strip()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(train_dir, old)
        log.warning("streams or config changed since the last training run: moved it to %s", old)
    train_dir.mkdir(parents=True, exist_ok=True)
    owner.write_text(digest + "\n")
    (train_dir / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))


def run(cfg: TrainConfig, run_dir: str | Path, validators: list[Validator] = (),
        environment: Any = None) -> StageStats:
    """Run the stage inside a run directory: reads `RUN/streams`, writes `RUN/train`.

    The digest covers the streams index and shards, so new streams retrain and the same ones skip.
    With `method: grpo` it trains online instead (`grpo.run`: against `environment`, the user
    streams, or by default the run's replayed conversations).
    """
    if cfg.method == "grpo":
        from duplexalign.train import grpo

        return grpo.run(cfg, run_dir, validators, environment)
    if environment is not None:
        raise ConfigError("an environment of user streams is only read by train.method=grpo")
    rank0 = int(os.environ.get("RANK", "0")) == 0
    streams_dir = Path(run_dir) / "streams"
    st = StageRun("train", cfg, run_dir, inputs=(f"streams/{INDEX_NAME}",), needs="streams",
                  why="no finished RUN/streams",
                  extra_inputs=lambda: {"streams": streams_digest(streams_dir)})
    if (prev := st.previous()) is not None:
        return prev
    if rank0:
        claim_dir(st.rd.path("train"), st.digest, cfg)
    st.stats = fit(cfg, streams_dir, st.rd.path("train"), validators)
    return st.finish() if rank0 else st.stats
