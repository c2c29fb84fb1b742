"""Online GRPO on the text stream: `train.method: grpo` of the train stage.

Owns the online loop: each step takes `prompts` user streams of an `Environment` (replayed logged
users by default; the sandbox passes its simulated users), rolls the current policy out `group_size`
times on each with the batched `LMGen` rollouts of `evaluate.rollout` (temperature 1 and no top-k by
default, so that the rollouts are samples of the policy being trained), scores every rollout with the
named reward terms of `train.rewards`, turns them into group-relative advantages and takes a
clipped policy-gradient step on the text stream with a k3 KL to the reference (`grpo_loss`). The
text log-probs are a teacher-forced forward of the rollout's full token tensor (text, the model's
audio, the user's audio: the text is conditioned on both audio channels), per token or per
speak/silence decision, or mixed: timing rewards on the decision, content rewards on the word
(`credit`), with the advantage of the whole rollout or of each user turn's window (`per_turn`).
Around it the trainer's usual parts: AdamW with warmup + cosine,
clipping, validation callbacks with the best checkpoint on a composite and early stopping, atomic
checkpoints with exact resume (the step picks the user streams and the sampling seed, so a resumed
run repeats the same rollouts), metrics per step (every reward term, the collapse checks, KL,
and what the content judge did: replies flagged, calls failed or read from the cache). The content
judge is any registered one (`train.grpo.judge`), the LLM judge opened exactly as the annotate stage
opens it (same client, prompt template, answer cache, local server when no URL is given). Single
process only.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import random
from collections import Counter
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.errors import ConfigError
from duplexalign.judges.content import LLMJudgeConfig
from duplexalign.streams.layout import TEXT_PAD_ID
from duplexalign.train.environment import ReplayConfig
from duplexalign.train.rewards import RewardConfig

if TYPE_CHECKING:
    from duplexalign.runs import StageStats
    from duplexalign.train.environment import Environment
    from duplexalign.train.stage import TrainConfig
    from duplexalign.train.validate import Validator

log = logging.getLogger(__name__)


class GRPOConfig(StageConfig):
    """Options of `train.method: grpo` (section `train.grpo`). The trainer's own options (model,
    init, reference_init, lr, warmup_steps, max_steps, grad_clip, micro_batch_size, seed,
    checkpoint_every, val) apply as for DPO (the KL's reference is `reference_init`, else the
    starting model); the preference-loss options (loss, score, floor anchor, reference) do not."""

    lr: float | None = Field(None, gt=0)
    """Learning rate of online training (None: `train.lr`), so that one preset can hold a DPO and
    a GRPO recipe."""
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps of online training (None: `train.max_steps`)."""
    seed: int | None = None
    """Seed of online training: the user streams of each step, the rollouts' sampling and the
    initial torch state (None: `train.seed`)."""
    group_size: int = Field(8, ge=2)
    """G: rollouts per user stream (the group the advantages are normalised in)."""
    prompts: int = Field(4, ge=1)
    """User streams per step (a step trains on prompts * group_size rollouts)."""
    clip_eps: float = Field(0.2, gt=0)
    """PPO clipping range of the probability ratio."""
    kl_beta: float = Field(0.04, ge=0)
    """Weight of the k3 KL to the reference (the starting model)."""
    credit: Literal["token", "decision", "mixed", "decision+word"] = "token"
    """"token": the log-prob of each sampled text token; "decision": only the speak/silence
    decision of each frame, p(speak) = 1 - p(PAD) (ASPIRin); "mixed": the timing terms
    (`rewards.DECISION_TERMS`) credit the speak/silence decision of every frame and the content
    terms (`rewards.WORD_TERMS`) credit the word chosen on speaking frames, p(token | speak), each
    with its own group-centred advantage, both scaled by the std of the whole reward (so the two
    add up to token credit's advantage); "decision+word": the decision gets every term (as with
    "decision") and the word given speech gets the content terms on top."""
    per_turn: bool = False
    """Credit each user turn's window of frames (from the turn's start to the next one's) with the
    rewards of what happened in it (`rewards.turn_terms`: its cut-ins, jump-ins, silence, wait
    and flagged reply), normalised over the group turn by turn, instead of every frame with the
    whole rollout's reward: a cut-in in turn 2 no longer blames the good answer of turn 1."""
    decision_weight: float = Field(1.0, gt=0)
    """"mixed" and "decision+word": weight of the decision row's loss against the word row's.
    Each row is averaged over its own frames, the decision over every frame and the word over
    the speaking ones only, so at 1 a speaking frame's word weighs (frames / speaking frames)
    times a decision (about 5x in the sandbox, where the model speaks in a fifth of the frames)
    and, under Adam, the word gradient sets the step of the weights both share."""
    scale_advantages: bool = True
    """Divide the centred rewards by the group's std (False: only centre them)."""
    updates_per_step: int = Field(1, ge=1)
    """Optimizer updates on each batch of rollouts (> 1: PPO epochs; the ratio then leaves 1)."""
    temp: float = Field(1.0, gt=0)
    """Sampling temperature of the audio codebooks of the rollouts."""
    temp_text: float = Field(1.0, gt=0)
    """Sampling temperature of the text stream (1 = samples of the trained policy)."""
    rollout_batch: int = Field(64, ge=1)
    """Rollouts run together by `LMGen`."""
    judge: str = "none"
    """Content judge of the `content` term by registry name: `llm` (the annotate stage's LLM
    judge, endpoint and options in `llm`), `oracle` (the sandbox's ground truth) or "none" (no
    content term; then its weight must be 0). A group with a failed judge call trains on its
    other terms that step (`rewards.group_totals`)."""
    llm: LLMJudgeConfig | None = None
    """Endpoint and options of `judge: llm`, the same section as `annotate.llm` (point `url` at a
    big judge; without one the local server is started for training and stopped after). None =
    the `annotate.llm` this run was annotated with (RUN/provenance.json), else the defaults. Only
    read with `judge: llm`."""
    rewards: RewardConfig = RewardConfig()
    replay: ReplayConfig = ReplayConfig()
    """Replaying the run's logged users (the environment when none is given)."""


def step_items(items: list, prompts: int, step: int, seed: int) -> list:
    """The user streams of step `step` (0-based): consecutive slices of a per-epoch shuffle, so
    the choice depends on (seed, step) only and a resumed run picks the same ones."""
    n = len(items)
    out = []
    for k in range(step * prompts, (step + 1) * prompts):
        epoch, pos = divmod(k, n)
        order = list(range(n))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        out.append(items[order[pos]])
    return out


def stack_rollouts(rolls: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Token tensors `[N, R, T]` of rollouts (padded with their last frame to the longest) and
    the mask of their own frames `[N, T]`."""
    t_max = max(r.text_tokens.shape[-1] for r in rolls)
    codes, mask = [], torch.zeros(len(rolls), t_max, dtype=torch.bool)
    for i, r in enumerate(rolls):
        c = r.codes()
        t = c.shape[-1]
        mask[i, :t] = True
        codes.append(torch.cat([c, c[:, -1:].expand(-1, t_max - t)], dim=-1))
    return torch.stack(codes), mask


def frame_logprobs(model: torch.nn.Module, codes: torch.Tensor, credit: str) -> torch.Tensor:
    """Per-frame log-probs of the text row of `codes [B, R, T]` under `model`: `[B, T]` of the
    token (credit "token") or of the speak/silence decision (credit "decision"); `[B, 2, T]` of
    the decision and the word given speech (credit "mixed" or "decision+word",
    `grpo_loss.split_logprobs`)."""
    from duplexalign.models.forward import text_logits, token_logprobs
    from duplexalign.train.grpo_loss import decision_logprobs, split_logprobs

    logits = text_logits(model, codes)
    tokens = codes[:, 0]
    if credit in ("mixed", "decision+word"):
        return split_logprobs(logits, tokens)
    return token_logprobs(logits, tokens) if credit == "token" else decision_logprobs(logits, tokens)


def credit_parts(credit: str, rewards: list[dict[str, Any]], weights: dict[str, float],
                 whole: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor,
                 per_turn: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What each log-prob row is credited with: `(rewards, frame mask [N, T])` per row of
    `frame_logprobs` (one row, or two for "mixed": the decision row gets the weighted timing terms
    on every valid frame, the word row the weighted content terms on speaking frames; for
    "decision+word" the decision row gets every term).

    Args:
        rewards: the named terms of each of the N rollouts (with "turns", `rewards.TurnTerms`,
            when `per_turn`).
        whole: their total rewards `[N]` (`rewards.group_totals`).
        codes: the rollouts' tokens `[N, R, T]` (the text row tells speaking frames).
        mask: valid frames `[N, T]`.
        per_turn: the rewards of each row per user turn, `[N, J]` (J: the most turns of any
            rollout; a rollout with fewer is padded with 0), instead of `[N]`.
    """
    from duplexalign.train.rewards import DECISION_TERMS, WORD_TERMS

    def total(names: tuple[str, ...] | None) -> torch.Tensor:
        return weighted_totals(rewards, weights, names, per_turn)

    everything = total(None) if per_turn else whole
    if credit not in ("mixed", "decision+word"):
        return [(everything, mask)]
    speaking = (codes[:, 0] != TEXT_PAD_ID).to(mask.device) & mask
    decision = total(DECISION_TERMS) if credit == "mixed" else everything
    return [(decision, mask), (total(WORD_TERMS), speaking)]


def weighted_totals(rewards: list[dict[str, Any]], weights: dict[str, float],
                    names: tuple[str, ...] | None = None, per_turn: bool = False) -> torch.Tensor:
    """The weighted sum of the terms `names` (None: every weighted term) of each rollout, `[N]`,
    or with `per_turn` of each of its user turns (`rewards.TurnTerms`), `[N, J]` (J: the most
    turns of any rollout; a rollout with fewer is padded with 0). A term a rollout lacks is left
    out: a group whose judging failed has no content term in any of its rollouts (`group_totals`)."""
    from duplexalign.train.rewards import total_reward

    def weighted(row: dict[str, Any]) -> dict[str, float]:
        return {k: v for k, v in weights.items() if k in row and (names is None or k in names)}

    if not per_turn:
        return torch.tensor([total_reward(r, weighted(r)) for r in rewards], dtype=torch.float64)
    out = torch.zeros(len(rewards), max(len(r["turns"].terms) for r in rewards),
                      dtype=torch.float64)
    for i, r in enumerate(rewards):
        for j, terms in enumerate(r["turns"].terms):
            out[i, j] = total_reward(terms, weighted(r))
    return out


def turn_of_frame(rewards: list[dict[str, Any]], frames: int) -> torch.Tensor:
    """The user turn whose window holds each frame, `[N, T]` long: frame t (starting at t x 80 ms)
    belongs to the last turn window that opens at or before it (`rewards.TurnTerms.starts`)."""
    from duplexalign.timebase import FRAME_SECONDS

    times = torch.arange(frames, dtype=torch.float64) * FRAME_SECONDS
    rows = [torch.searchsorted(torch.tensor(r["turns"].starts, dtype=torch.float64), times,
                               right=True) - 1 for r in rewards]
    return torch.stack(rows).clamp(min=0)


def advantages(g: GRPOConfig, scored: list[dict[str, Any]], totals: torch.Tensor,
               codes: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`(advantages, frame mask [N, T])` of each log-prob row (`credit_parts`): group-relative
    advantages `[N]` of the whole rollouts, or with `g.per_turn` per frame `[N, T]`, each frame
    getting its user turn's advantage within the group (`grpo_loss.turn_advantages`). Every part
    is scaled by the std of the whole reward (of the same turn, per turn), so the parts add up.

    Args:
        scored: the N rollouts' terms (`environment.score_rollouts`), in groups of G.
        totals: their total rewards `[N]` (`rewards.group_totals`).
        codes: their tokens `[N, R, T]`; mask: valid frames `[N, T]`.
    """
    from duplexalign.train.grpo_loss import frame_advantages, group_advantages, turn_advantages

    shape = (g.prompts, g.group_size)
    parts = credit_parts(g.credit, scored, g.rewards.weights, totals, codes, mask, g.per_turn)
    if not g.per_turn:
        whole = totals.view(*shape)
        return [(group_advantages(r.view(*shape), scale=g.scale_advantages,
                                  scale_by=whole).flatten().float(), m) for r, m in parts]
    starts = [r["turns"].starts for r in scored]
    for k in range(0, len(starts), g.group_size):
        if len(set(starts[k:k + g.group_size])) > 1:
            raise ValueError(f"the rollouts of group {k // g.group_size} have different user "
                             "turns: per-turn credit needs one user stream per group")
    whole = weighted_totals(scored, g.rewards.weights, per_turn=True)
    turn = turn_of_frame(scored, mask.shape[1]).to(mask.device)
    return [(frame_advantages(turn_advantages(r.view(*shape, -1), scale=g.scale_advantages,
                                              scale_by=whole.view(*shape, -1))
                              .reshape(len(scored), -1).float().to(mask.device), turn), m)
            for r, m in parts]


def _mean(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def judge_metrics(scored: list[dict[str, float]], groups_without_content: int,
                  calls: Counter) -> dict[str, float]:
    """What the content judge did in one step, for the step log: replies it graded and flagged,
    its failed calls, the rollouts they hit, the groups that trained without the content term
    (`rewards.group_totals`), and of its client (`calls`: this step's change of
    `LLMClient.stats`) the HTTP requests sent (retries included) and the answers read from the
    cache."""
    def total(key: str) -> float:
        return float(sum(r.get(key, 0.0) for r in scored))

    return {"judge/replies": total("judge/replies"), "judge/flagged": total("judge/flagged"),
            "judge/failed_calls": total("judge/failed_calls"),
            "judge/failed_rollouts": float(sum(1 for r in scored
                                               if r.get("judge/failed_calls", 0.0) > 0)),
            "judge/groups_without_content": float(groups_without_content),
            "judge/requests": float(calls.get("requests", 0)),
            "judge/cached": float(calls.get("cache_hits", 0))}


def fit(cfg: TrainConfig, env: Environment, out_dir: str | Path,
        validators: list[Validator] = (), judge_cache: str | Path | None = None) -> StageStats:
    """Train `cfg.init` (or the preset) online against `env`; write checkpoints, metrics, models.

    The content judge `cfg.grpo.judge` is opened first (an LLM judge without `llm.url` starts the
    local server, which stops when training ends).

    Args:
        cfg: training options (`cfg.grpo` and the trainer's own).
        env: the user streams and the tokenizer.
        out_dir: the stage directory (`RUN/train`): `ckpt/`, `best/`, `final/`, `metrics.jsonl`.
        validators: validation callbacks (rollout metrics), merged into the composite.
        judge_cache: the LLM judge's answer cache when `grpo.llm.cache_dir` is None (None:
            `out_dir/judge_cache`); a resumed run reads the answers of the steps it repeats.
    """
    from duplexalign.train.environment import content_judge

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("train.method=grpo runs in one process: launch it without torchrun")
    out = Path(out_dir)
    own = {k: v for k in ("lr", "max_steps", "seed") if (v := getattr(cfg.grpo, k)) is not None}
    cfg = cfg.model_copy(update=own) if own else cfg
    with ExitStack() as stack:
        judge = content_judge(cfg.grpo.judge, cfg.grpo.llm, stack,
                              judge_cache if judge_cache is not None else out / "judge_cache")
        return _train(cfg, env, out, validators, judge)


def _train(cfg: TrainConfig, env: Environment, out: Path, validators: list[Validator],
           judge: Any) -> StageStats:
    """`fit` with its content judge open (`judge`: None without one)."""
    from tqdm import tqdm

    from duplexalign.evaluate.rollout import SamplingConfig, rollout
    from duplexalign.models import device as devices
    from duplexalign.models.lora import freeze_for_text_only, has_lora, lora_scale, param_groups
    from duplexalign.models.presets import build_model, load_model, save_model
    from duplexalign.runs import StageStats
    from duplexalign.train import checkpoint
    from duplexalign.train.environment import score_rollouts
    from duplexalign.train.grpo_loss import policy_loss
    from duplexalign.train.metrics import MetricsLog
    from duplexalign.train.rewards import TERMS, group_totals
    from duplexalign.train.schedule import warmup_cosine
    from duplexalign.train.validate import save_best, track_best, validate

    g = cfg.grpo
    device = devices.resolve_device(cfg.device, "train.device")
    bf16 = devices.use_bf16(device, cfg.bf16)
    torch.manual_seed(cfg.seed)
    model = (load_model(cfg.init, device=device) if cfg.init
             else build_model(cfg.preset(), device=device))
    freeze_for_text_only(model)
    if cfg.reference_init is not None:  # e.g. the base model in later on-policy rounds
        ref = load_model(cfg.reference_init, device=device).requires_grad_(False).eval()
    else:
        ref = model if has_lora(model) else copy.deepcopy(model).requires_grad_(False).eval()
    client_stats = getattr(getattr(judge, "client", None), "stats", None)
    opt = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.depth_lr, cfg.weight_decay),
                            betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, cfg.max_steps))
    ckpt_root = out / "ckpt"
    step, best, since_best = 0, -math.inf, 0
    if (last := checkpoint.latest(ckpt_root)) is not None:
        extra, state = checkpoint.load(last, model)
        opt.load_state_dict(extra["optim"])
        sched.load_state_dict(extra["sched"])
        torch.set_rng_state(extra["rng"])
        step, best, since_best = state["step"], state["best"], state["since_best"]
        log.info("resumed from %s (step %d)", last, step)
    mlog = MetricsLog(out)
    bar = tqdm(total=cfg.max_steps, initial=step, desc="grpo", unit="step")
    mb = cfg.micro_batch_size

    def logprobs(m: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
        with devices.autocast(device, bf16):
            return frame_logprobs(m, codes.to(device), g.credit).float()

    @torch.no_grad()
    def all_logprobs(m: torch.nn.Module, codes: torch.Tensor, base: bool) -> torch.Tensor:
        with lora_scale(m, 0.0) if base and has_lora(m) else nullcontext():
            return torch.cat([logprobs(m, codes[i:i + mb]) for i in range(0, len(codes), mb)])

    stop = False
    while step < cfg.max_steps and not stop:
        items = step_items(env.items, g.prompts, step, cfg.seed)
        group = [dataclasses.replace(it, id=f"{it.id}#g{j}") for it in items
                 for j in range(g.group_size)]
        sampling = SamplingConfig(use_sampling=True, temp=g.temp, temp_text=g.temp_text, top_k=0,
                                  top_k_text=0, seed=cfg.seed * 1_000_003 + step * 1000,
                                  batch_size=g.rollout_batch)
        rolls = rollout(model, group, env.tokenizer, sampling, progress=False)
        model.train()
        calls_before = Counter(client_stats or {})
        scored = score_rollouts(rolls, g.rewards, judge, per_turn=g.per_turn)
        totals, no_content = group_totals(scored, g.rewards.weights, g.group_size)
        rewards = torch.tensor(totals, dtype=torch.float64)
        codes, mask = stack_rollouts(rolls)
        mask = mask.to(device)
        parts = [(a.to(device), m) for a, m in advantages(g, scored, rewards, codes, mask)]
        row_weights = [g.decision_weight, 1.0] if len(parts) == 2 else [1.0]
        ref_lp = all_logprobs(ref, codes, base=True)
        old_lp = all_logprobs(model, codes, base=False) if g.updates_per_step > 1 else None
        n = len(rolls)
        losses, kls, clips, gnorms = [], [], [], []
        for _ in range(g.updates_per_step):
            for i in range(0, n, mb):
                lp = logprobs(model, codes[i:i + mb])
                old = lp.detach() if old_lp is None else old_lp[i:i + mb]
                rows = [policy_loss(*(x[:, k] if lp.dim() == 3 else x
                                      for x in (lp, old, ref_lp[i:i + mb])),
                                    adv[i:i + mb], m[i:i + mb], g.clip_eps, g.kl_beta)
                        for k, (adv, m) in enumerate(parts)]
                loss = sum(r.loss * w for r, w in zip(rows, row_weights, strict=True))
                (loss.sum() / n).backward()
                losses += loss.tolist()
                kls += sum(r.kl for r in rows).tolist()
                clips += (sum(r.clip_frac for r in rows) / len(rows)).tolist()
            gnorms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))
            opt.step()
            opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
        bar.update(1)
        spread = rewards.view(g.prompts, g.group_size).std(dim=1, unbiased=False)
        metrics = {"loss": sum(losses) / len(losses), "kl": sum(kls) / len(kls),
                   "clip_frac": sum(clips) / len(clips), "grad_norm": gnorms[-1],
                   "lr": sched.get_last_lr()[0], "reward/total": float(rewards.mean()),
                   "reward/group_std": float(spread.mean()),
                   "groups_without_signal": float((spread < 1e-9).double().mean())}
        for k in (*TERMS, "check/repetition_rate", "check/silence_rate", "check/reply_length"):
            v = _mean(scored, k)
            if not math.isnan(v):
                metrics[k if k.startswith("check/") else f"reward/{k}"] = v
        if judge is not None:
            metrics.update(judge_metrics(scored, no_content,
                                         Counter(client_stats or {}) - calls_before))
        if cfg.val.every and step % cfg.val.every == 0 and validators:
            vm, score = validate(validators, model, step, cfg.val.metric)
            metrics.update(vm)
            metrics["val/composite"] = score
            best, since_best, stop = track_best(score, best, since_best, cfg.val.patience)
            if since_best == 0:
                save_best(model, out, step, score)
        mlog.write(step, metrics)
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or stop:
            checkpoint.save(ckpt_root, step, model,
                            {"optim": opt.state_dict(), "sched": sched.state_dict(),
                             "rng": torch.get_rng_state()},
                            {"step": step, "best": best, "since_best": since_best},
                            cfg.keep_checkpoints)
    bar.close()
    save_model(model, out / "final")
    stats = StageStats("train")
    stats.add("steps", step)
    for reason, n in env.skipped.items():
        stats.add(f"skipped/{reason}", n)
    stats.values.update({"method": "grpo", "credit": g.credit, "environment": env.name,
                         "user_streams": len(env.items), "stopped_early": stop,
                         "best_composite": best, "judge": g.judge})
    if client_stats:
        stats.values["llm"] = dict(client_stats)
    return stats


def run(cfg: TrainConfig, run_dir: str | Path, validators: list[Validator] = (),
        environment: Environment | None = None) -> StageStats:
    """The train stage with `method: grpo` inside a run directory: writes `RUN/train`.

    Args:
        environment: the user streams; None replays the run's ingested conversations
            (`train.grpo.replay`). Its identity (name and item ids) enters the stage digest.
    """
    from duplexalign.runs import StageRun
    from duplexalign.train.environment import CONVERSATIONS, replay_environment
    from duplexalign.train.stage import claim_dir

    cfg = resolve_judge(cfg, run_dir)
    env_id = environment.digest() if environment is not None else "replay"
    st = StageRun("train", cfg, run_dir, inputs=(CONVERSATIONS,), needs="ingest",
                  why="no finished RUN/conversations to replay",
                  extra_inputs={"environment": env_id}, digested=_digested(cfg))
    if (prev := st.previous()) is not None:
        return prev
    env = environment if environment is not None else replay_environment(run_dir, cfg.grpo.replay)
    claim_dir(st.rd.path("train"), st.digest, cfg)
    st.stats = fit(cfg, env, st.rd.path("train"), validators, st.rd.path("judge_cache"))
    return st.finish()


def resolve_judge(cfg: TrainConfig, run_dir: str | Path) -> TrainConfig:
    """`cfg` with `grpo.llm` filled in for `judge: llm` (unset: the `annotate.llm` the run was
    annotated with, else the defaults), so that the stage's provenance and digest name the judge
    that scored the rollouts.

    Raises:
        ConfigError: `grpo.judge` names no registered content judge (with did-you-mean).
    """
    from duplexalign.annotate.stage import judged_with
    from duplexalign.judges.base import JUDGES
    from duplexalign.runs import RunDir

    g = cfg.grpo
    if g.judge != "none":
        JUDGES.get(g.judge)
    if g.judge != "llm" or g.llm is not None:
        return cfg
    llm = judged_with(RunDir(run_dir, create=False)) or LLMJudgeConfig()
    return cfg.model_copy(update={"grpo": g.model_copy(update={"llm": llm})})


def _digested(cfg: TrainConfig) -> dict[str, Any]:
    """The config as it enters the digest: how the judge's endpoint is reached (concurrency,
    timeouts, retries, threads, cache folder, key variable) left out, as annotate does, so that
    changing them resumes training instead of starting it over."""
    from duplexalign.judges.endpoint import ENDPOINT_RUNTIME

    d = cfg.model_dump(mode="json")
    for k in ENDPOINT_RUNTIME:
        (d["grpo"].get("llm") or {}).pop(k, None)
    return d
