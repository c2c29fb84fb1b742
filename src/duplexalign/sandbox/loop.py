"""On-policy alignment rounds on the sandbox: deploy the current policy, then the ordinary stages.

Owns one round of the product's loop as a team would run it on a live model, and the chain of
rounds: the current policy is deployed to simulated users asking *fresh* training scenarios (each
round draws its own conversations: the deployment seed moves by `ROUND_SEED_STRIDE`), the logs go
through the ordinary pipeline (`pipeline.run`: ingest, annotate, pairs, streams and train, which
starts from the current policy; its reference is the current policy or the base model,
`DemoConfig.reference`), and the checkpoint
chosen by rollout validation becomes the next round's policy. Round 1 writes to `OUT/logs` and
`OUT/run`, round r > 1 to `OUT/round<r>/`. With `train.method: grpo` a round trains online instead
of on pairs: after ingest and annotate, GRPO rolls the policy out against the round's simulated users
(the deployment's specs, rendered again with their exact words) or replays the round's logs
(`DemoConfig.grpo_users`). It knows nothing about the held-out evaluation: the demo
scores each round's policy through the `on_round` callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duplexalign.errors import ConfigError
from duplexalign.sandbox.deploy import Assets, DeployConfig, deploy, write_logs

if TYPE_CHECKING:
    from duplexalign.sandbox.demo import DemoConfig

log = logging.getLogger(__name__)

ROUND_SEED_STRIDE = 1000
"""Round r deploys with seed `deploy.seed + (r - 1) * ROUND_SEED_STRIDE` (fresh conversations)."""


@dataclass
class RoundResult:
    """One finished round.

    Attributes:
        round: 1-based round number.
        run_dir: the round's run directory (ingest ... train).
        start: the policy the round deployed and trained from.
        checkpoint: the round's aligned checkpoint (rollout validation's best, else final).
        validation_history: the rollout validator's metrics per validated step.
        timings: seconds per stage.
        base_length: the validator's reference reply length (kept for the next rounds).
    """

    round: int
    run_dir: Path
    start: Path
    checkpoint: Path
    validation_history: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    base_length: float | None = None


def round_dir(out: Path, r: int) -> Path:
    """Folder holding round `r`'s `logs/` and `run/` (the output folder itself for round 1)."""
    return out if r == 1 else out / f"round{r}"


def round_deploy(cfg: DeployConfig, r: int) -> DeployConfig:
    """The deployment of round `r`: the same users' distribution, fresh conversations."""
    return cfg.model_copy(update={"seed": cfg.seed + (r - 1) * ROUND_SEED_STRIDE})


def align_round(cfg: DemoConfig, r: int, policy: Path, base: Path, assets: Assets,
                stages: dict[str, Any], out: Path, base_length: float | None = None,
                progress: bool = True) -> RoundResult:
    """Run round `r`: deploy `policy`, then ingest, annotate, pairs, streams and train from it.

    Args:
        cfg: the demo options (deployment, validation users, judge, reference choice).
        r: round number (1-based); it picks the deployment seed and the folder.
        policy: checkpoint folder of the current policy.
        base: checkpoint folder of the base (instruct) model, the reference when
            `cfg.reference == "base"`.
        assets: tokenizer and codec.
        stages: the pipeline's stage configs (`demo.load_demo`); ingest's input is set here.
        out: the demo's output folder.
        base_length: reply length of the base model on the validation users (the validator's
            length-change reference); None measures it on this round's starting policy.
        progress: show progress bars.

    Returns:
        The round's result (its aligned checkpoint is the next round's policy).
    """
    from duplexalign import pipeline
    from duplexalign.models.presets import load_model
    from duplexalign.sandbox.validation import RolloutValidator
    from duplexalign.speech.base import ASR_BACKENDS

    timings: dict[str, float] = {}

    def lap(name: str, t: float) -> None:
        timings[name] = round(time.time() - t, 1)
        log.info("round %d: %s done in %.1f s", r, name, timings[name])

    folder = round_dir(out, r)
    logs, run_dir = folder / "logs", folder / "run"
    t = time.time()
    if not (logs / "index.jsonl").exists():
        deployed = deploy(load_model(policy), round_deploy(cfg.deploy, r), assets,
                          progress=progress)
        write_logs(deployed, logs, asr=ASR_BACKENDS.get(cfg.user_asr)(), progress=progress)
    lap("deploy", t)
    stages = {**stages, "ingest": stages["ingest"].model_copy(
        update={"input": logs / "index.jsonl"})}
    online = stages["train"].method == "grpo"
    t = time.time()
    # online training needs no pairs: annotate still runs for the report and the judge agreement
    stats = pipeline.run(stages, run_dir, ("ingest", "annotate") if online
                         else ("ingest", "annotate", "pairs"))
    lap("ingest..annotate" if online else "ingest..pairs", t)
    if not online and not stats["pairs"].counts.get("written"):
        raise ConfigError(f"demo round {r}: the loop produced no preference pairs (see "
                          f"{run_dir}/stats.json: annotate found no issues or pairs dropped them "
                          "all); deploy more conversations with --set sandbox.deploy.conversations=N")
    validator = RolloutValidator(assets, cfg.validation, base_length=base_length)
    reference = base if cfg.reference == "base" and policy != base else None
    stages["train"] = stages["train"].model_copy(update={"init": policy,
                                                         "reference_init": reference})
    environment = None
    if online and cfg.grpo_users == "simulated":
        from duplexalign.sandbox.environment import simulated_users

        environment = simulated_users(round_deploy(cfg.deploy, r), assets, progress=progress)
    t = time.time()
    pipeline.run(stages, run_dir, ("train",) if online else ("streams", "train"),
                 validators=[validator], environment=environment)
    lap("train" if online else "streams+train", t)
    best = run_dir / "train" / "best"
    chosen = best if (best / "model.safetensors").exists() else run_dir / "train" / "final"
    return RoundResult(round=r, run_dir=run_dir, start=policy, checkpoint=chosen,
                       validation_history=validator.history, timings=timings,
                       base_length=validator.base_length)


def on_policy_rounds(cfg: DemoConfig, assets: Assets, stages: dict[str, Any], out: Path,
                     on_round: Callable[[RoundResult], None] | None = None,
                     progress: bool = True) -> list[RoundResult]:
    """Run `cfg.rounds` rounds, each deploying and training the previous round's checkpoint.

    Args:
        cfg: the demo options (`rounds`, `reference`, deployment, validation, judge).
        assets: tokenizer, codec and the base instruct checkpoint (round 1's policy).
        stages: the ordinary stages' configs.
        out: output folder.
        on_round: called after each round (the demo evaluates the round's policy there).
        progress: show progress bars.

    Returns:
        The rounds' results, in order.
    """
    base = assets.instruct
    policy, results, base_length = base, [], None
    for r in range(1, cfg.rounds + 1):
        res = align_round(cfg, r, policy, base, assets, stages, out, base_length, progress)
        base_length = res.base_length if base_length is None else base_length
        results.append(res)
        if on_round is not None:
            on_round(res)
        policy = res.checkpoint
    return results

