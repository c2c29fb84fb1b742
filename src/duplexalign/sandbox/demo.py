"""`duplexalign demo`: the whole alignment loop on the embedded sandbox, offline, on a CPU.

Owns the demo's orchestration and nothing inside the stages: assets (committed, or built when
missing) -> a flaw check of the instruct model on held-out users at temperature 1 and at deployment
settings -> deployment to simulated users, logged in the moshi-finetune layout with the user channel
transcribed by the real ASR -> the ordinary pipeline (`pipeline.run`, the runner of `duplexalign
run`, on the preset's top-level stage sections): `ingest`, `annotate` (LLM judge or `oracle`, plus
the timing rules), `pairs`, `streams`, `train` (DPO-LN by default; the checkpoint is chosen by rollout
validation on the validation split) -> rollouts of the baseline and the aligned model on held-out
scenarios with held-out voices -> the before/after table with bootstrap intervals, the judge's
agreement with the ground truth, and the ordinary `report`. With `rounds` > 1 the deployment-to-train
part repeats on-policy (`loop.py`: each round deploys the previous round's checkpoint on fresh
training scenarios) and the held-out table is computed after every round. Ablation flags only change
stage configs (`ablate`: pair categories, loss name).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from duplexalign.config import StageConfig, apply_overrides, build, load_yaml
from duplexalign.errors import ConfigError
from duplexalign.pipeline import DEFAULT_STAGES, STAGES
from duplexalign.runs import atomic_write_text
from duplexalign.sandbox.build import ASSETS_DIR, CODEC_NAME, INSTRUCT_NAME, BuildConfig
from duplexalign.sandbox.deploy import (
    Assets,
    DeployConfig,
    SamplingSettings,
    deploy,
    user_items,
)
from duplexalign.sandbox.table import NOT_PERCENT, before_after, flaw_rates, goals, to_markdown
from duplexalign.speech.codec import codec_kind

log = logging.getLogger(__name__)

CONTENT = ("helpfulness", "safety", "factuality", "instruction_adherence", "tone")
TIMING = ("interruption", "pause_takeover", "unresponsiveness")


class DemoConfig(StageConfig):
    """Options of `duplexalign demo` (section `sandbox:` of configs/sandbox.yaml): the world the
    pipeline runs in (assets, deployment, validation and test users, rounds). The stages' own
    options live in the preset's top-level stage sections, as for `duplexalign run`."""

    assets: str | None = None
    """Assets folder; None = the committed `sandbox/assets` (built there when missing)."""
    build: BuildConfig = BuildConfig()
    deploy: DeployConfig = DeployConfig()
    """The deployment whose logs feed the loop (training scenarios, training voices)."""
    validation: DeployConfig = DeployConfig(split="validation", conversations=48, seed=2)
    """Users of the trainer's rollout validation (validation scenarios, training voices)."""
    test: DeployConfig = DeployConfig(split="test", voices="heldout", conversations=200, seed=3)
    """Held-out evaluation users (test scenarios, held-out voices)."""
    deployment_sampling: SamplingSettings = SamplingSettings(temp=0.8, temp_text=0.7, top_k=250,
                                                             top_k_text=25)
    """LMGen's default sampling, for the flaw check at deployment settings."""
    user_asr: str = "whisper"
    """ASR backend that transcribes the user channel of the deployment logs."""
    rounds: int = Field(1, ge=1)
    """On-policy rounds: each deploys the current policy on fresh training scenarios and trains
    from it (`loop.py`); the held-out table is reported after every round."""
    reference: Literal["policy", "base"] = "policy"
    """Reference model of the preference loss in rounds after the first: the round's starting
    policy, or the base instruct model (round 1: both are the base)."""
    compare_with: list[str] = []
    """Other demo folders (their `demo_results.json`) whose held-out tables the report shows
    next to this run's, e.g. DPO-LN's beside GRPO's; they must share the held-out users and base."""
    by_judge: dict[str, list[str]] = {}
    """Dotted overrides per content judge (`annotate.judge`), applied under the caller's: one that
    names the same key as an override of the caller's (`--method`, `--set train.method=...`) is
    left out. The preset trains online (GRPO, `train.method=grpo`) with the oracle, which gives a
    verdict on each of 3,072 rollouts for free, and offline (DPO-LN on the judged logs) with the
    local LLM judge, which reads about 6 s per conversation on 2 cores, on fewer deployed
    conversations, so that the demo stays within 15 minutes. They may not set the judge itself."""
    grpo_users: Literal["simulated", "replay"] = "simulated"
    """Users of online training (`train.method: grpo`): the simulated users of `deploy` (the same
    specs as the logs, rendered with their exact words), or replaying the logged user channel of
    the round's ingested conversations (ASR words, TTS-rebuilt audio when it was not kept)."""

def assets_dir(cfg: DemoConfig) -> Path:
    """The assets folder, built with `cfg.build` when it has no instruct checkpoint yet."""
    root = Path(cfg.assets) if cfg.assets else ASSETS_DIR
    if not (root / INSTRUCT_NAME / "model.safetensors").exists():
        from duplexalign.sandbox.build import build as build_assets

        log.info("sandbox assets missing in %s: building them (one-off)", root)
        build_assets(cfg.build, root)
    return root


def stage_defaults(assets: Path) -> dict[str, dict[str, Any]]:
    """What the sandbox puts under a preset's stage sections: its assets' codec, tokenizer and
    instruct checkpoint, and the rollout-validation metric of the trainer."""
    from duplexalign.sandbox.validation import DEFAULT_WEIGHTS

    return {
        "streams": {"codec": codec_kind(assets / CODEC_NAME),
                    "codec_path": str(assets / CODEC_NAME),
                    "tokenizer": str(assets / "tokenizer.model")},
        "train": {"init": str(assets / INSTRUCT_NAME),
                  "val": {"every": 10, "metric": DEFAULT_WEIGHTS},
                  "grpo": {"judge": "oracle",
                           "replay": {"codec": codec_kind(assets / CODEC_NAME),
                                      "codec_path": str(assets / CODEC_NAME),
                                      "tokenizer": str(assets / "tokenizer.model")}}},
    }


def load_demo(path: str | Path | None, overrides: list[str]) -> tuple[DemoConfig, dict[str, Any]]:
    """The demo's `sandbox:` section and the stages' configs from the same preset.

    Stage sections sit over `stage_defaults` of the sandbox's assets (built here when missing),
    and the overrides `by_judge` lists for the judge apply under the caller's; overrides are
    written with their section (`sandbox.deploy.conversations=64`, `train.lr=2e-5`), and one that
    nothing reads is an error.
    """
    cfg, configs = _load_demo(path, overrides)
    judge = configs["annotate"].judge
    named = {_key(o) for o in overrides}
    listed = cfg.by_judge.get(judge, [])
    if bad := [o for o in listed if _key(o) in ("annotate.judge", "train.grpo.judge")]:
        raise ConfigError(f"sandbox.by_judge.{judge}: {bad[0]!r} would change the judge it is for")
    extra = [o for o in listed if _key(o) not in named]
    return _load_demo(path, extra + overrides) if extra else (cfg, configs)


def _key(override: str) -> str:
    """The dotted key of a `KEY=VALUE` override."""
    return override.split("=", 1)[0].strip()


def _load_demo(path: str | Path | None, overrides: list[str]
               ) -> tuple[DemoConfig, dict[str, Any]]:
    from duplexalign.pipeline import load_configs

    cfg = demo_config(path, overrides)
    stage_over = [o for o in overrides if not o.strip().startswith("sandbox.")]
    configs = load_configs(path, stage_over, DEFAULT_STAGES, defaults=stage_defaults(assets_dir(cfg)),
                           also_reads=("sandbox",))
    return cfg, configs


def sandbox_defaults(path: str | Path, overrides: list[str]) -> dict[str, dict[str, Any]]:
    """`stage_defaults` of the assets a sandbox preset names (`duplexalign run` on a preset with a
    `sandbox:` section runs its stages on the sandbox's assets)."""
    return stage_defaults(assets_dir(demo_config(path, overrides)))


def demo_config(path: str | Path | None, overrides: list[str]) -> DemoConfig:
    """The `sandbox:` section of a preset with the `sandbox.*` overrides applied (the others are
    left to the stage sections)."""
    from duplexalign.config import split_overrides

    data = load_yaml(path) if path else {}
    mine = split_overrides(overrides, ["sandbox", *STAGES])["sandbox"]
    return build(DemoConfig, apply_overrides(data.get("sandbox") or {}, mine, DemoConfig),
                 prefix="sandbox")


def ablate(configs: dict[str, Any], pairs: str | None = None, loss: str | None = None) -> None:
    """Apply the demo's ablation flags to the stage configs in place.

    Args:
        pairs: keep the pair categories of "content", "timing" or both ("mixed").
        loss: the preference loss; an `sft` anchor term already in `train.loss` is kept.
    """
    if pairs is not None:
        keep = {"mixed": CONTENT + TIMING, "content": CONTENT, "timing": TIMING}[pairs]
        configs["pairs"].strategy_for = {c: s for c, s in configs["pairs"].strategy_for.items()
                                         if c in keep}
    if loss is not None:
        anchor = {k: v for k, v in configs["train"].loss.items() if k == "sft"}
        configs["train"].loss = {loss: 1.0, **anchor}


def pairs_kind(configs: dict[str, Any]) -> str:
    """"content", "timing" or "mixed": which pair categories the pairs stage makes."""
    cats = set(configs["pairs"].strategy_for)
    return "content" if cats <= set(CONTENT) else "timing" if cats <= set(TIMING) else "mixed"


def preference_loss(configs: dict[str, Any]) -> str:
    """The preference term of `train.loss` (its other term, if any, is the `sft` anchor), or
    "grpo (<credit> credit)" for online training."""
    train = configs["train"]
    if train.method == "grpo":
        return f"grpo ({train.grpo.credit} credit, {train.grpo.group_size} rollouts per user)"
    return "+".join(k for k in configs["train"].loss if k != "sft") or "sft"


def evaluate_models(models: dict[str, Any], cfg: DeployConfig, assets: Assets
                    ) -> dict[str, list]:
    """Roll each model out on the same held-out users; returns name -> `Deployed` list."""
    items = user_items(cfg, assets)
    return {name: deploy(m, cfg, assets, items=items, decode_audio=False)
            for name, m in models.items()}


def judge_agreement(run_dir: Path) -> dict[str, Any]:
    """How often the run's content judge agrees with the ground truth, per model reply.

    Replays the oracle on the ingested conversations and compares, per (reply, category), flagged
    or not; returns overall agreement on "problematic or not" and per-category precision/recall.
    """
    import asyncio

    from duplexalign.manifest import iter_dicts, read_manifest
    from duplexalign.records import Conversation
    from duplexalign.sandbox.oracle import OracleJudge

    judge_issues: dict[tuple[str, float], set[str]] = {}
    for d in iter_dicts(run_dir / "annotations.jsonl.gz"):
        if d["kind"] == "content":
            key = (d["conversation_id"], round(d["reply_span"][0], 2))
            judge_issues.setdefault(key, set()).add(d["category"])
    oracle = OracleJudge()
    tp: dict[str, int] = {c: 0 for c in CONTENT}
    fp = dict(tp)
    fn = dict(tp)
    agree = total = 0
    for conv in read_manifest(run_dir / "conversations.jsonl.gz", Conversation):
        out = asyncio.run(oracle.judge(conv))
        for v in out.verdicts:
            truth = set(v.flagged)
            got = judge_issues.get((conv.id, round(v.span[0], 2)), set())
            total += 1
            agree += bool(truth) == bool(got)
            for c in CONTENT:
                tp[c] += c in truth and c in got
                fp[c] += c not in truth and c in got
                fn[c] += c in truth and c not in got
    per = {c: {"precision": tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else None,
               "recall": tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else None,
               "truth": tp[c] + fn[c]} for c in CONTENT}
    return {"replies": total, "problematic_agreement": agree / total if total else None,
            "per_category": per}


def run(cfg: DemoConfig, stages: dict[str, Any], out_dir: str | Path, progress: bool = True
        ) -> dict[str, Any]:
    """Run the demo into `out_dir`; returns the results written to `out_dir/demo_results.json`.

    `stages` are the pipeline's stage configs (`load_demo`); each round runs them through
    `pipeline.run` on its deployment logs.

    Each ordinary stage is resumable, so rerunning after an interruption continues. The top-level
    table, goals, checkpoint and judge agreement are those of the last round; `rounds` lists every
    round's.
    """
    from duplexalign import pipeline
    from duplexalign.models.presets import load_model
    from duplexalign.sandbox.loop import RoundResult, on_policy_rounds

    t0 = time.time()
    out = Path(out_dir)
    compared = compared_tables(cfg.compare_with)  # a missing folder fails before any work
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def lap(name: str, t: float) -> None:
        timings[name] = round(time.time() - t, 1)
        log.info("demo: %s done in %.1f s", name, timings[name])

    t = time.time()
    root = assets_dir(cfg)
    assets = Assets.load(root)
    instruct = load_model(assets.instruct)
    lap("assets", t)

    # 1. the designed flaws, measured on held-out users (temperature 1 and deployment settings)
    t = time.time()
    test_items = user_items(cfg.test, assets, progress=progress)
    dep_cfg = cfg.test.model_copy(update={"sampling": cfg.deployment_sampling})
    base_t1 = deploy(instruct, cfg.test, assets, items=test_items, decode_audio=False,
                     progress=progress)
    base_dep = deploy(instruct, dep_cfg, assets, items=test_items, decode_audio=False,
                      progress=progress)
    flaws = {"temperature_1": flaw_rates([d.outcomes for d in base_t1]),
             "deployment": flaw_rates([d.outcomes for d in base_dep])}
    lap("flaw_check", t)

    # 2. on-policy rounds of the ordinary loop, each scored on the held-out users
    rounds: list[dict[str, Any]] = []

    online = stages["train"].method == "grpo"

    def results() -> dict[str, Any]:
        last = rounds[-1]
        return {"table": last["table"], "goals": last["goals"], "flaw_rates": flaws,
                "judge": stages["annotate"].judge, "judge_agreement": last["judge_agreement"],
                "pairs": pairs_kind(stages) if not online else "none (online rollouts)",
                "loss": preference_loss(stages),
                "reference": cfg.reference,
                "floor_anchor_weight": 0.0 if online else stages["train"].floor_anchor_weight,
                "checkpoint": last["checkpoint"],
                "validation_history": last["validation_history"], "stats": last["stats"],
                "rounds": rounds, "complete": len(rounds) == cfg.rounds, "timings": timings,
                "compared": compared,
                "seconds": round(time.time() - t0, 1)}

    def held_out(res: RoundResult) -> None:
        t = time.time()
        after = deploy(load_model(res.checkpoint), cfg.test, assets, items=test_items,
                       decode_audio=False, progress=progress)
        table = before_after([d.outcomes for d in base_t1], [d.outcomes for d in after])
        pipeline.run(stages, res.run_dir, ("report",))
        rounds.append({"round": res.round, "table": table, "goals": goals(table),
                       "start": str(res.start), "checkpoint": str(res.checkpoint),
                       "validation_history": res.validation_history,
                       "judge_agreement": judge_agreement(res.run_dir),
                       "stats": json.loads((res.run_dir / "stats.json").read_text())
                       if (res.run_dir / "stats.json").exists() else {},
                       "online_steps": online_steps(res.run_dir / "train" / "metrics.jsonl")
                       if stages["train"].method == "grpo" else [],
                       "timings": {**res.timings, "evaluate": round(time.time() - t, 1)}})
        _write(out, results())  # every finished round is on disk, even if a later one fails
        log.info("demo: round %d evaluated on held-out users", res.round)

    t = time.time()
    on_policy_rounds(cfg, assets, stages, out, on_round=held_out, progress=progress)
    lap("rounds", t)
    final = results()
    _write(out, final)
    return final


ONLINE_KEYS = ("reward/total", "reward/unresponsiveness", "reward/interruption",
               "reward/pause_takeover", "reward/no_yield", "reward/latency", "reward/content",
               "reward/repetition",
               "check/silence_rate", "check/repetition_rate", "check/reply_length", "kl",
               "judge/flagged", "judge/failed_calls")


def online_steps(metrics: Path) -> list[dict[str, float]]:
    """GRPO's reward terms, collapse checks, KL and judge counts per step (from
    `train/metrics.jsonl`)."""
    if not metrics.exists():
        return []
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [{"step": r["step"], **{k: r[k] for k in ONLINE_KEYS if k in r}} for r in rows]


def _online_lines(steps: list[dict[str, float]]) -> list[str]:
    """GRPO's training rollouts per step as a Markdown table (mean over the step's rollouts)."""
    if not steps:
        return []
    keys = [k for k in ONLINE_KEYS if k in steps[0]]
    out = ["", "## Online training rollouts per step (GRPO, training users)", "",
           "Mean over the step's rollouts: reward terms (higher is better, per user turn), "
           "collapse checks (silence rate per frame, repetition rate of word 3-grams, words per "
           "reply) and the k3 KL to the reference; the content judge's flagged replies and "
           "failed calls are the step's totals.", "",
           "| step | " + " | ".join(k.split("/")[-1] for k in keys) + " |",
           "|---" * (len(keys) + 1) + "|"]
    for r in steps:
        out.append(f"| {r['step']} | " + " | ".join(
            "n/a" if r.get(k) is None else f"{r[k]:.3g}" for k in keys) + " |")
    return out


def _write(out: Path, results: dict[str, Any]) -> None:
    atomic_write_text(out / "demo_results.json", json.dumps(results, indent=2, default=str))
    atomic_write_text(out / "demo_report.md", render_report(results))


def _pct(e: dict[str, Any] | None) -> str:
    if not e or e.get("value") is None:
        return "n/a"
    return f"{100 * e['value']:.1f} % [{100 * e['low']:.1f}, {100 * e['high']:.1f}]"


def compared_tables(folders: list[str]) -> dict[str, dict[str, Any]]:
    """`recipe label -> held-out table` of other demo folders (`sandbox.compare_with`).

    Raises:
        ConfigError: a folder has no finished demo results.
    """
    from duplexalign.errors import ConfigError

    out = {}
    for f in folders:
        path = Path(f) / "demo_results.json"
        if not path.is_file():
            raise ConfigError(f"sandbox.compare_with: {f} has no demo_results.json (run the demo "
                              "there first)")
        d = json.loads(path.read_text())
        out[f"{Path(f).name} ({d['loss']})"] = d["table"]
    return out


def _comparison_lines(results: dict[str, Any]) -> list[str]:
    """The report's side-by-side of this run and `results["compared"]` (none: no lines)."""
    from duplexalign.sandbox.table import side_by_side

    if not results.get("compared"):
        return []
    tables = {f"this run ({results['loss']})": results["table"], **results["compared"]}
    try:
        body = side_by_side(tables)
    except ValueError as e:
        body = f"Not shown: {e}.\n"
    return ["## Against other recipes (same held-out users)", "", body]


def render_report(results: dict[str, Any]) -> str:
    """The demo's Markdown summary: before/after table, goals, flaw check, judge agreement."""
    rounds = results.get("rounds", [])
    many = len(rounds) > 1
    lines = ["# duplexalign sandbox demo", "",
             f"judge: `{results['judge']}`, pairs: `{results['pairs']}`, loss: "
             f"`{results['loss']}`, floor anchor weight: {results.get('floor_anchor_weight', 0)}, "
             f"on-policy rounds: {max(1, len(rounds))} (reference: "
             f"`{results.get('reference', 'policy')}`), aligned checkpoint: "
             f"`{results['checkpoint']}` (chosen by rollout validation on the validation split). "
             f"Wall time {results['seconds']:.0f} s."
             + ("" if results.get("complete", True) else
                f" **Partial: {len(rounds)} round(s) finished so far.**"), "",
             "## Before/after on held-out scenarios and held-out voices"
             + (f" (after round {len(rounds)})" if many else ""),
             "Pooled rates per user turn, 95 % cluster-bootstrap intervals over conversations; "
             "the delta is paired (same user streams). Jump-in at \"um\" pauses is part of the "
             "interruption rate; selectivity is in points.", "",
             to_markdown(results["table"])]
    if many:
        lines += ["## Held-out table after every round",
                  "Each round deploys the previous round's checkpoint on fresh training scenarios "
                  "and trains from it; every table compares with the base model.", ""]
        for r in rounds:
            lines.append(to_markdown(r["table"], title=f"Round {r['round']}"))
    lines += _comparison_lines(results)
    lines += ["## Goals", ""]
    for k, v in results["goals"].items():
        lines.append(f"- {k}: {'met' if v else '**not met**'}")
    lines += ["", "## Designed flaws of the instruct model (held-out users)", "",
              "| rate | temperature 1 | deployment sampling (LMGen defaults) |", "|---|---|---|"]
    t1, dep = results["flaw_rates"]["temperature_1"], results["flaw_rates"]["deployment"]
    for k in t1:
        if k in NOT_PERCENT:
            continue
        lines.append(f"| {k} | {_pct(t1[k])} | {_pct(dep.get(k))} |")
    for r in rounds if many else []:
        lines += _validation_lines(r["validation_history"], r["checkpoint"],
                                   f" in round {r['round']}")
    if not many:
        lines += _validation_lines(results.get("validation_history", []),
                                   results["checkpoint"])
    for r in rounds:
        lines += _online_lines(r.get("online_steps", []))
    if not all(results["goals"].values()):
        lines += ["", "Some goals are not met. docs/sandbox.md keeps the measurements of the known "
                  "causes (what the instruct model hears, and the silence/interruption trade-off "
                  "the validation rows above show) and of every recipe tried."]
    ag = results["judge_agreement"]
    pa = ag["problematic_agreement"]
    lines += ["", "## Judge agreement with the ground truth", "",
              f"{ag['replies']} replies; problematic-or-not agreement: "
              f"{'n/a' if pa is None else f'{100 * pa:.1f} %'}", ""]
    for c, v in ag["per_category"].items():
        p = "n/a" if v["precision"] is None else f"{100 * v['precision']:.0f} %"
        r = "n/a" if v["recall"] is None else f"{100 * v['recall']:.0f} %"
        lines.append(f"- {c}: precision {p}, recall {r} ({v['truth']} true problems)")
    lines += ["", "Stage-by-stage report: `run/report.md`.", ""]
    return "\n".join(lines)


def _validation_lines(history: list[dict[str, Any]], checkpoint: str, where: str = ""
                      ) -> list[str]:
    """The trainer's rollout validation per step as a Markdown table (validation split)."""
    if not history:
        return []
    keys = ("unresponsiveness", "interruption", "jump_in_at_pause", "unsafe_compliance",
            "qa_accuracy")
    out = ["", f"## Rollout validation during training{where} (validation split)", "",
           f"The aligned checkpoint is the best composite of these rows (`{Path(checkpoint).name}`).",
           "", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for h in history:
        vals = [h.get(f"sandbox/{k}") for k in keys]
        out.append(f"| {h['step']} | " + " | ".join(
            "n/a" if v is None else f"{100 * v:.1f} %" for v in vals) + " |")
    return out
