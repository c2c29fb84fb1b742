"""`duplexalign demo`: the whole alignment loop on the embedded sandbox, offline, on a CPU.

Owns the demo's orchestration and nothing inside the stages: assets (committed, or built when
missing) -> a flaw check of the instruct model on held-out users at temperature 1 and at deployment
settings -> deployment to simulated users, logged in the moshi-finetune layout with the user channel
transcribed by the real ASR -> the ordinary stages `ingest`, `annotate` (LLM judge or `oracle`, plus
the timing rules), `pairs`, `streams`, `train` (DPO-LN by default; the checkpoint is chosen by rollout
validation on the validation split) -> rollouts of the baseline and the aligned model on held-out
scenarios with held-out voices -> the before/after table with bootstrap intervals, the judge's
agreement with the ground truth, and the ordinary `report`. Ablation flags only change stage configs
(pair categories, loss name).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from duplexalign.config import StageConfig, build, load_yaml
from duplexalign.errors import ConfigError
from duplexalign.manifest import iter_dicts
from duplexalign.runs import atomic_write_text
from duplexalign.sandbox.build import ASSETS_DIR, INSTRUCT_NAME, BuildConfig
from duplexalign.sandbox.deploy import (
    SCENARIOS_NAME,
    Assets,
    DeployConfig,
    SamplingSettings,
    deploy,
    user_items,
    write_logs,
)
from duplexalign.sandbox.table import NOT_PERCENT, before_after, flaw_rates, goals, to_markdown

log = logging.getLogger(__name__)

CONTENT = ("helpfulness", "safety", "factuality", "instruction_adherence", "tone")
TIMING = ("interruption", "pause_takeover", "unresponsiveness")


class DemoConfig(StageConfig):
    """Options of `duplexalign demo` (section `sandbox:` of configs/sandbox.yaml)."""

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
    judge: Literal["llm", "oracle"] = "llm"
    pairs: Literal["mixed", "content", "timing"] = "mixed"
    loss: str = "dpo_ln"
    nll_anchor: float = 1.0
    """Weight of the NLL term on the chosen stream added to the loss (sandbox-probe.md: an
    anchor of 1 widened the safe range of steps about 2x); 0 turns it off."""
    user_asr: str = "whisper"
    """ASR backend that transcribes the user channel of the deployment logs."""
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Overrides per ordinary stage: ingest, annotate, pairs, streams, train, report."""


def assets_dir(cfg: DemoConfig) -> Path:
    """The assets folder, built with `cfg.build` when it has no instruct checkpoint yet."""
    root = Path(cfg.assets) if cfg.assets else ASSETS_DIR
    if not (root / INSTRUCT_NAME / "model.safetensors").exists():
        from duplexalign.sandbox.build import build as build_assets

        log.info("sandbox assets missing in %s: building them (one-off)", root)
        build_assets(cfg.build, root)
    return root


def stage_configs(cfg: DemoConfig, assets: Path) -> dict[str, Any]:
    """The ordinary stages' configs for this demo (sandbox defaults, then `cfg.stages`)."""
    from duplexalign.annotate.stage import AnnotateConfig
    from duplexalign.ingest.base import IngestConfig
    from duplexalign.pairs.config import PairsConfig
    from duplexalign.report.stage import ReportConfig
    from duplexalign.sandbox.validation import DEFAULT_WEIGHTS
    from duplexalign.streams.stage import StreamsConfig
    from duplexalign.train.stage import TrainConfig

    pairs_cats = {"mixed": CONTENT + TIMING, "content": CONTENT, "timing": TIMING}[cfg.pairs]
    strategy = {c: s for c, s in PairsConfig().strategy_for.items() if c in pairs_cats}
    defaults: dict[str, dict[str, Any]] = {
        # a deployed model that never spoke is the unresponsiveness case: keep those logs
        "ingest": {"format": "moshi-finetune", "require_channels": ["user"]},
        "annotate": {"judge": cfg.judge},
        "pairs": {"strategy_for": strategy},
        "streams": {"codec": "melrvq", "codec_path": str(assets / "codec.safetensors"),
                    "tokenizer": str(assets / "tokenizer.model")},
        "train": {"init": str(assets / INSTRUCT_NAME), "loss": _loss_terms(cfg),
                  "val": {"every": 10, "metric": DEFAULT_WEIGHTS}},
        "report": {},
    }
    types = {"ingest": IngestConfig, "annotate": AnnotateConfig, "pairs": PairsConfig,
             "streams": StreamsConfig, "train": TrainConfig, "report": ReportConfig}
    out = {}
    for name, typ in types.items():
        data = _merge(defaults[name], cfg.stages.get(name, {}))
        out[name] = build(typ, data, prefix=f"sandbox.stages.{name}")
    return out


def _loss_terms(cfg: DemoConfig) -> dict[str, float]:
    terms = {cfg.loss: 1.0}
    if cfg.nll_anchor > 0:
        terms["sft"] = cfg.nll_anchor
    return terms


def _rewriter(cfg: DemoConfig, stages: dict[str, Any], stack: ExitStack):
    """The pairs stage's rewriter: the oracle's, the configured endpoint, or the local LLM."""
    if cfg.judge == "oracle":
        from duplexalign.sandbox.oracle import OracleRewriter

        return OracleRewriter()
    if stages["pairs"].rewriter is not None:
        return None  # the pairs stage builds it from its own config
    from duplexalign.judges.llm import LLMClient
    from duplexalign.judges.rewriter import Rewriter
    from duplexalign.judges.server import LocalLLMServer

    llm = stages["annotate"].llm
    url, model = llm.url, llm.model
    if url is None:
        srv = stack.enter_context(LocalLLMServer(model, threads=llm.threads))
        url, model = srv.base_url, srv.model_name
    return Rewriter(LLMClient(url, model, concurrency=llm.concurrency, timeout=llm.timeout))


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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


def run(cfg: DemoConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run the demo into `out_dir`; returns the results written to `out_dir/demo_results.json`.

    Each ordinary stage is resumable, so rerunning after an interruption continues.
    """
    from duplexalign.annotate.stage import run as annotate
    from duplexalign.ingest.stage import run as ingest
    from duplexalign.models.presets import load_model
    from duplexalign.pairs.stage import run as pairs
    from duplexalign.report.stage import run as report
    from duplexalign.sandbox.oracle import use_scenarios
    from duplexalign.sandbox.validation import RolloutValidator
    from duplexalign.speech.base import ASR_BACKENDS
    from duplexalign.streams.stage import run as streams
    from duplexalign.train.stage import run_stage as train

    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def lap(name: str, t: float) -> None:
        timings[name] = round(time.time() - t, 1)
        log.info("demo: %s done in %.1f s", name, timings[name])

    t = time.time()
    root = assets_dir(cfg)
    assets = Assets.load(root)
    instruct = load_model(assets.instruct)
    stages = stage_configs(cfg, root)
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

    # 2. deployment logs -> the ordinary loop
    t = time.time()
    logs = out / "logs"
    if not (logs / "index.jsonl").exists():
        deployed = deploy(instruct, cfg.deploy, assets, progress=progress)
        write_logs(deployed, logs, asr=ASR_BACKENDS.get(cfg.user_asr)(), progress=progress)
    use_scenarios(logs / SCENARIOS_NAME)
    lap("deploy", t)
    run_dir = out / "run"
    for name, fn, args in (("ingest", ingest, (logs / "index.jsonl", run_dir)),
                           ("annotate", annotate, (run_dir,))):
        t = time.time()
        fn(stages[name], *args)
        lap(name, t)
    t = time.time()
    with ExitStack() as stack:
        pairs(stages["pairs"], run_dir, rewriter=_rewriter(cfg, stages, stack))
    lap("pairs", t)
    if not (run_dir / "pairs.jsonl.gz").exists() or not any(
            True for _ in iter_dicts(run_dir / "pairs.jsonl.gz")):
        raise ConfigError(f"demo: the loop produced no preference pairs (see {run_dir}/stats.json:"
                          " annotate found no issues or pairs dropped them all); deploy more "
                          "conversations with --set sandbox.deploy.conversations=N")
    t = time.time()
    streams(stages["streams"], run_dir)
    lap("streams", t)
    t = time.time()
    validator = RolloutValidator(assets, cfg.validation)
    torch.manual_seed(0)
    train(stages["train"], run_dir, validators=[validator])
    lap("train", t)

    # 3. held-out evaluation: baseline vs the checkpoint chosen by rollout validation
    t = time.time()
    best = run_dir / "train" / "best"
    chosen = best if (best / "model.safetensors").exists() else run_dir / "train" / "final"
    aligned = load_model(chosen)
    after = deploy(aligned, cfg.test, assets, items=test_items, decode_audio=False,
                   progress=progress)
    table = before_after([d.outcomes for d in base_t1], [d.outcomes for d in after])
    lap("evaluate", t)
    agreement = judge_agreement(run_dir)
    report(stages["report"], run_dir)
    results = {"table": table, "goals": goals(table), "flaw_rates": flaws,
               "judge": cfg.judge, "judge_agreement": agreement, "pairs": cfg.pairs,
               "loss": cfg.loss, "checkpoint": str(chosen),
               "validation_history": validator.history,
               "stats": json.loads((run_dir / "stats.json").read_text())
               if (run_dir / "stats.json").exists() else {},
               "timings": timings, "seconds": round(time.time() - t0, 1)}
    atomic_write_text(out / "demo_results.json", json.dumps(results, indent=2, default=str))
    atomic_write_text(out / "demo_report.md", render_report(results))
    return results


def _pct(e: dict[str, Any] | None) -> str:
    if not e or e.get("value") is None:
        return "n/a"
    return f"{100 * e['value']:.1f} % [{100 * e['low']:.1f}, {100 * e['high']:.1f}]"


def render_report(results: dict[str, Any]) -> str:
    """The demo's Markdown summary: before/after table, goals, flaw check, judge agreement."""
    lines = ["# duplexalign sandbox demo", "",
             f"judge: `{results['judge']}`, pairs: `{results['pairs']}`, loss: "
             f"`{results['loss']}`, aligned checkpoint: `{results['checkpoint']}` "
             f"(chosen by rollout validation on the validation split). Wall time "
             f"{results['seconds']:.0f} s.", "",
             "## Before/after on held-out scenarios and held-out voices",
             "Pooled rates per user turn, 95 % cluster-bootstrap intervals over conversations; "
             "the delta is paired (same user streams).", "",
             to_markdown(results["table"]), "## Goals", ""]
    for k, v in results["goals"].items():
        lines.append(f"- {k}: {'met' if v else '**not met**'}")
    lines += ["", "## Designed flaws of the instruct model (held-out users)", "",
              "| rate | temperature 1 | deployment sampling (LMGen defaults) |", "|---|---|---|"]
    t1, dep = results["flaw_rates"]["temperature_1"], results["flaw_rates"]["deployment"]
    for k in t1:
        if k in NOT_PERCENT:
            continue
        lines.append(f"| {k} | {_pct(t1[k])} | {_pct(dep.get(k))} |")
    lines += _validation_lines(results.get("validation_history", []), results["checkpoint"])
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


def _validation_lines(history: list[dict[str, Any]], checkpoint: str) -> list[str]:
    """The trainer's rollout validation per step as a Markdown table (validation split)."""
    if not history:
        return []
    keys = ("unresponsiveness", "interruption", "unsafe_compliance", "qa_accuracy")
    out = ["", "## Rollout validation during training (validation split)", "",
           f"The aligned checkpoint is the best composite of these rows (`{Path(checkpoint).name}`).",
           "", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for h in history:
        vals = [h.get(f"sandbox/{k}") for k in keys]
        out.append(f"| {h['step']} | " + " | ".join(
            "n/a" if v is None else f"{100 * v:.1f} %" for v in vals) + " |")
    return out


def load_demo_config(path: str | Path | None, overrides: list[str]) -> DemoConfig:
    """`DemoConfig` from the `sandbox:` section of a preset plus `sandbox.*` overrides."""
    from duplexalign.config import apply_overrides

    data = load_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    return build(DemoConfig, data.get("sandbox", {}), prefix="sandbox")
