"""Comparing two evaluation runs: the paper-style before/after table with deltas and CIs.

Owns reading two `duplexalign evaluate` outputs (`results.json` + `<task>/samples.jsonl`), the
paired bootstrap of each task's primary metric over the sample ids both runs share (independent
resampling when they share none), the group averages (Avg QA, Avg safety) computed inside the same
resamples, and rendering the table as Markdown. It reuses each task's own `aggregate`, so a delta is
computed exactly like the numbers it compares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplexalign.errors import ConfigError
from duplexalign.evaluate.metrics import Estimate
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import TaskContext

GROUP_AVERAGES = {"qa": "Avg QA", "safety": "Avg safety"}


def load_run(path: str | Path) -> dict[str, Any]:
    """`results.json` of an evaluation (a directory or the file) plus each task's samples."""
    p = Path(path)
    res_path = p / "results.json" if p.is_dir() else p
    if not res_path.is_file():
        raise ConfigError(f"{path}: no results.json (run `duplexalign evaluate` first)")
    res = json.loads(res_path.read_text())
    res["_dir"] = str(res_path.parent)
    res["_samples"] = {}
    for name in res.get("tasks", {}):
        sp = res_path.parent / name / "samples.jsonl"
        if sp.is_file():
            rows = [json.loads(x) for x in sp.read_text().splitlines() if x.strip()]
            res["_samples"][name] = {r["id"]: r["scores"] for r in rows}
    return res


def _value(task_name: str, scores: Sequence[dict[str, Any]], ctx: TaskContext, metric: str
           ) -> float:
    est = TASKS.get(task_name).aggregate(list(scores), ctx).get(metric)
    return float("nan") if est is None else est.value


def compare(a: dict[str, Any], b: dict[str, Any], resamples: int = 200, seed: int = 0
            ) -> dict[str, Any]:
    """Per-task primary metrics of runs `a` and `b`, deltas (b - a) and group averages, with CIs.

    Args:
        a: baseline run from `load_run`.
        b: candidate run from `load_run`.
        resamples: paired bootstrap resamples for the deltas.
        seed: bootstrap seed.

    Returns:
        {"rows": [{"task", "metric", "group", "higher_is_better", "a", "b", "delta",
        "paired"}], "averages": [...same keys...]}, estimates as dicts.
    """
    ctx = TaskContext(data_dir=Path("."), resamples=10, seed=seed)
    rng = np.random.default_rng(seed)
    names = [n for n in a.get("tasks", {}) if n in b.get("tasks", {})]
    rows, boots = [], {}
    for name in names:
        ta, tb = a["tasks"][name], b["tasks"][name]
        metric = ta["primary"]
        sa, sb = a["_samples"].get(name, {}), b["_samples"].get(name, {})
        common = sorted(set(sa) & set(sb))
        paired = bool(common)
        deltas = []
        if sa and sb:
            la = [sa[i] for i in common] if paired else list(sa.values())
            lb = [sb[i] for i in common] if paired else list(sb.values())
            for _ in range(resamples):
                ia = rng.integers(0, len(la), len(la))
                ib = ia if paired else rng.integers(0, len(lb), len(lb))
                va = _value(name, [la[i] for i in ia], ctx, metric)
                vb = _value(name, [lb[i] for i in ib], ctx, metric)
                deltas.append((va, vb))
        boots[name] = deltas
        rows.append({"task": name, "metric": metric, "group": ta.get("group", ""),
                     "higher_is_better": ta.get("higher_is_better", True),
                     "a": ta["metrics"].get(metric), "b": tb["metrics"].get(metric),
                     "delta": _delta(ta["metrics"].get(metric), tb["metrics"].get(metric),
                                     [vb - va for va, vb in deltas]),
                     "paired": paired, "n_common": len(common)})
    averages = []
    for group, label in GROUP_AVERAGES.items():
        members = [r for r in rows if r["group"] == group]
        if not members:
            continue
        va = _mean([_v(r["a"]) for r in members])
        vb = _mean([_v(r["b"]) for r in members])
        draws = []
        if all(boots[r["task"]] for r in members):
            for k in range(resamples):
                draws.append(_mean([boots[r["task"]][k][1] - boots[r["task"]][k][0]
                                    for r in members]))
        averages.append({"task": label, "metric": "mean of primaries", "group": group,
                         "higher_is_better": True, "a": {"value": va}, "b": {"value": vb},
                         "delta": _delta({"value": va}, {"value": vb}, draws),
                         "paired": all(r["paired"] for r in members)})
    return {"a": a.get("checkpoint", a.get("_dir")), "b": b.get("checkpoint", b.get("_dir")),
            "rows": rows, "averages": averages}


def _v(est: dict | None) -> float:
    return float("nan") if not est or est.get("value") is None else float(est["value"])


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def _delta(a: dict | None, b: dict | None, draws: Sequence[float]) -> dict[str, Any]:
    value = _v(b) - _v(a)
    d = np.array([x for x in draws if not math.isnan(x)])
    if d.size:
        lo, hi = np.percentile(d, [2.5, 97.5])
        est = Estimate(value, float(lo), float(hi), int(d.size))
    else:
        est = Estimate(value, float("nan"), float("nan"), 0)
    return est.to_dict()


def _fmt(est: dict | None, pct: bool) -> str:
    v = _v(est)
    if math.isnan(v):
        return "–"
    scale = 100 if pct else 1
    s = f"{v * scale:.1f}" if pct else f"{v:.2f}"
    lo, hi = (est or {}).get("low"), (est or {}).get("high")
    if lo is not None and hi is not None:
        s += f" [{lo * scale:.1f}, {hi * scale:.1f}]" if pct else f" [{lo:.2f}, {hi:.2f}]"
    return s


_RATE_WORDS = ("rate", "accuracy", "appropriate", "share")


def table_rows(cmp: dict[str, Any], label_a: str = "A", label_b: str = "B") -> list[list[str]]:
    """The comparison as rows of cells (header first): benchmark, metric, A, B, delta.

    Rates are shown in percent; brackets are 95 % bootstrap intervals; the delta is B - A with
    a paired interval where the runs share sample ids.
    """
    rows = [["benchmark", "metric", label_a, label_b, f"Δ ({label_b} − {label_a})"]]
    for r in [*cmp["rows"], *cmp["averages"]]:
        pct = any(w in r["metric"] for w in _RATE_WORDS) or r["metric"] == "mean of primaries"
        arrow = "↑" if r["higher_is_better"] else "↓"
        rows.append([r["task"], f"{r['metric']} {arrow}", _fmt(r["a"], pct), _fmt(r["b"], pct),
                     _fmt(r["delta"], pct)])
    return rows


def to_markdown(cmp: dict[str, Any], label_a: str = "A", label_b: str = "B") -> str:
    """The comparison as a Markdown table (see `table_rows`)."""
    rows = table_rows(cmp, label_a, label_b)
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines) + "\n"
