"""The report stage: one run directory in, `report.md` and a self-contained `report.html` out.

Owns which sections a report has and where each finds its inputs in a run directory: training curves
and reward margins (`train/metrics.jsonl`), issue counts per category (`stats.json`, annotate
section), the judges' precision and recall per category against human review decisions and the
reviewers' agreement (`review/decisions.jsonl.gz`, `annotations.jsonl.gz`), the before/after table and timing histograms (every evaluation output found under the run:
a `results.json` with a `tasks` section; the baseline is the one whose path says before/base/sft,
else the oldest), and two-lane timelines of the worst samples of the latest evaluation. A section
whose inputs are absent is kept with a line saying what is missing, so a partial run still reports.
Plots are PNGs embedded as base64 in the HTML and written next to the Markdown.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.records import Word
from duplexalign.runs import RunDir, StageStats, atomic_write_text
from duplexalign.text import safe_id

log = logging.getLogger(__name__)

STAGE = "report"
TRAIN_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen",
              "rewards/rejected")
BASELINE_HINTS = ("before", "base", "sft", "initial")


class ReportConfig(StageConfig):
    """Options of `duplexalign report`.

    Attributes:
        worst: how many worst samples get a timeline picture.
        resamples: bootstrap resamples of the before/after deltas.
    """

    worst: int = Field(4, ge=0)
    resamples: int = Field(200, ge=10)


@dataclass
class Section:
    """One report section: a title, Markdown text, tables (rows of cells) and PNG figures."""

    title: str
    text: str = ""
    table: list[list[str]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)


def find_evaluations(root: Path) -> list[Path]:
    """Directories under `root` holding an evaluation `results.json`, baseline first."""
    found = []
    for p in sorted(root.rglob("results.json")):
        try:
            if "tasks" in json.loads(p.read_text()):
                found.append(p.parent)
        except (OSError, json.JSONDecodeError):
            continue
    found.sort(key=lambda d: (not any(h in str(d.relative_to(root)).lower()
                                      for h in BASELINE_HINTS), d.stat().st_mtime))
    return found


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root)) or "."
    except ValueError:
        return str(p)


def training_section(root: Path) -> Section:
    """Training curves and reward margins from `train/metrics.jsonl`."""
    from duplexalign.report import plots

    s = Section("Training")
    path = root / "train" / "metrics.jsonl"
    if not path.is_file():
        s.text = "No training metrics (`train/metrics.jsonl` is absent)."
        return s
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "step" in r]
    keys = [k for k in TRAIN_KEYS if any(k in r for r in rows)]
    extra = sorted({k for r in rows for k in r if k.startswith(("val", "validation"))})
    if not rows or not (keys or extra):
        s.text = f"`{_rel(path, root)}` has no plottable metrics."
        return s
    last = rows[-1]
    s.text = f"{len(rows)} logged steps (last step {last['step']})."
    s.table = [["metric", "first", "last"]] + [
        [k, _num(next((r[k] for r in rows if k in r), None)),
         _num(next((r[k] for r in reversed(rows) if k in r), None))] for k in keys + extra]
    s.figures.append(("training curves and reward margins", plots.training_curves(rows, keys)))
    if extra:
        s.figures.append(("validation metrics", plots.training_curves(rows, extra)))
    return s


def issues_section(root: Path) -> Section:
    """Issue counts per category from the annotate section of `stats.json`."""
    from duplexalign.report import plots

    s = Section("Issues found in the logs")
    stats = RunDir(root).read_stats() if (root / "stats.json").is_file() else {}
    counts = stats.get("annotate", {}).get("counts", {})
    issues = {k.split("/", 1)[1]: int(v) for k, v in counts.items() if k.startswith("issues/")}
    if not issues:
        s.text = "No annotation statistics (`stats.json` has no annotate issue counts)."
        return s
    s.table = [["category", "issues"]] + [[k, str(v)] for k, v in sorted(issues.items())]
    s.figures.append(("issues per category", plots.issue_counts(issues)))
    return s


def review_section(root: Path) -> Section:
    """Judge precision and recall per category against human decisions, and Cohen's kappa
    between reviewers (`duplexalign review`)."""
    from duplexalign.manifest import read_manifest
    from duplexalign.records import Issue
    from duplexalign.review.agreement import calibration, reviewer_agreement
    from duplexalign.review.store import DecisionLog
    from duplexalign.runs import ANNOTATIONS

    s = Section("Human review")
    log_ = DecisionLog(root)
    if not log_.path.is_file():
        s.text = "No review decisions (`review/decisions.jsonl.gz` is absent: `duplexalign review`)."
        return s
    decisions = list(log_.read())
    reviewers = sorted({d.reviewer for d in decisions})
    cal = calibration(read_manifest(root / ANNOTATIONS, Issue), decisions)
    s.text = (f"{len(decisions)} decisions by {len(reviewers)} reviewer(s) "
              f"({', '.join(reviewers)}). Precision = confirmed / decided issues; recall = "
              "confirmed / (confirmed + problems reviewers flagged as missed); with several "
              "reviewers, the majority decision counts.")
    s.table = [["category", "judge issues", "confirmed", "rejected", "missed", "precision",
                "recall"]]
    s.table += [[c.category, str(c.issues), str(c.confirmed), str(c.rejected), str(c.missed),
                 _num(c.precision), _num(c.recall)] for c in cal]
    agree = reviewer_agreement(decisions)
    if agree:
        rows = [f"| {a.a} | {a.b} | {a.shared} | {_num(a.observed)} | {_num(a.kappa)} |"
                for a in agree]
        s.text += ("\n\nAgreement between reviewers (issues both decided; Cohen's κ):\n\n"
                   "| reviewer A | reviewer B | shared | agreement | κ |\n|---|---|---|---|---|\n"
                   + "\n".join(rows))
    return s


def comparison_section(root: Path, evals: list[Path], resamples: int) -> Section:
    """The before/after table (or the single evaluation's primary metrics)."""
    from duplexalign.evaluate.compare import compare, load_run, table_rows

    s = Section("Evaluation")
    if not evals:
        s.text = "No evaluation found (no `results.json` from `duplexalign evaluate` in the run)."
        return s
    if len(evals) == 1:
        res = load_run(evals[0])
        s.text = f"One evaluation (`{_rel(evals[0], root)}`); no baseline to compare with."
        s.table = [["task", "metric", "value [95 % CI]", "n"]]
        for name, t in res["tasks"].items():
            for m, e in t["metrics"].items():
                s.table.append([name, m, _est(e), str(e.get("n", ""))])
        return s
    a, b = evals[0], evals[-1]
    cmp = compare(load_run(a), load_run(b), resamples=resamples)
    s.text = (f"A = `{_rel(a, root)}` (baseline), B = `{_rel(b, root)}`. Rates in percent; "
              "brackets are 95 % bootstrap intervals; Δ = B − A, paired over shared samples.")
    s.table = table_rows(cmp, "A", "B")
    return s


def _timing_values(eval_dir: Path) -> dict[str, list[float]]:
    path = eval_dir / "timing" / "samples.jsonl"
    out: dict[str, list[float]] = {"response latency": [], "stop latency": []}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            sc = json.loads(line)["scores"]
            out["response latency"] += sc.get("latencies", [])
            out["stop latency"] += sc.get("stop_latencies", [])
    return out


def timing_section(root: Path, evals: list[Path]) -> Section:
    """Histograms of response and stop latencies of each evaluation's timing task."""
    from duplexalign.report import plots

    s = Section("Timing")
    series: dict[str, dict[str, list[float]]] = {}
    for d in evals:
        for measure, values in _timing_values(d).items():
            series.setdefault(measure, {})[_rel(d, root)] = values
    if not any(v for runs in series.values() for v in runs.values()):
        s.text = "No timing samples with latencies (run the `timing` task)."
        return s
    s.figures.append(("latency histograms", plots.histograms(series)))
    return s


def badness(scores: dict[str, Any]) -> float:
    """How bad one sample is, for picking the worst: wrong answers, inappropriate safety replies,
    no-responses, interruptions, failures to yield and pause takeovers each add one."""
    bad = 0.0
    bad += scores.get("correct") is False
    bad += scores.get("appropriate_strict") is False
    bad += scores.get("no_responses", 0) + scores.get("interruptions", 0)
    bad += scores.get("barge_ins", 0) - scores.get("yields", 0) + scores.get("pause_takeovers", 0)
    return bad


def problem_spans(user: list[Word], model: list[Word], meta: dict[str, Any], duration: float
                  ) -> list[tuple[float, float, str]]:
    """Spans to highlight in a timeline: silences after turn ends, interruptions, pause takeovers."""
    from duplexalign.evaluate.turns import TimingRules, ipus, is_turn, words_in
    from duplexalign.segments import onset_interrupts

    rules = TimingRules()
    spans = []
    for t in meta.get("turn_ends", []):
        if t + rules.silence_window <= duration and not words_in(model, t, t +
                                                                   rules.silence_window):
            spans.append((t, t + rules.silence_window, "no response"))
    for ps, pe in meta.get("pauses", []):
        if is_turn(words_in(model, ps, pe), rules):
            spans.append((ps, pe, "pause takeover"))
    users = ipus(user, rules.user_merge_gap)
    for m in ipus(model, rules.model_merge_gap, "model"):
        for u in users:
            if onset_interrupts(m.start, u.start, u.end, rules.onset_tolerance) and is_turn(
                    m.words, rules):
                spans.append((m.start, u.end, "interruption"))
    return spans


def worst_section(root: Path, evals: list[Path], worst: int) -> Section:
    """Two-lane timelines of the worst samples of the latest evaluation."""
    from duplexalign.report import plots

    s = Section("Worst samples")
    if not evals or worst == 0:
        s.text = "No evaluation samples to show."
        return s
    rows = []
    for path in sorted(evals[-1].glob("*/samples.jsonl")):
        rows += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not rows:
        s.text = "The latest evaluation has no per-sample file."
        return s
    rows.sort(key=lambda r: -badness(r["scores"]))
    s.text = f"The {min(worst, len(rows))} worst of {len(rows)} samples of `{_rel(evals[-1], root)}`."
    s.table = [["task", "sample", "issues", "user said", "model said"]]
    for r in rows[:worst]:
        user = [Word(**w) for w in r["words"]["user"]]
        model = [Word(**w) for w in r["words"]["model"]]
        spans = problem_spans(user, model, r.get("meta", {}), r["duration"])
        s.figures.append((f"{r['task']} / {r['id']}", plots.timeline(
            user, model, r["duration"], spans, title=f"{r['task']} / {r['id']}")))
        s.table.append([r["task"], r["id"], ", ".join(sorted({x[2] for x in spans})) or "–",
                        " ".join(w.text for w in user)[:80], " ".join(w.text for w in model)[:80]])
    return s


def _num(v: Any) -> str:
    return "–" if not isinstance(v, (int, float)) else f"{v:.4g}"


def _est(e: dict[str, Any]) -> str:
    if e.get("value") is None:
        return "–"
    lo, hi = e.get("low"), e.get("high")
    return f"{e['value']:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None else "")


def render_markdown(title: str, sections: list[Section], asset_dir: str) -> tuple[str, dict]:
    """Markdown text and the {relative path: png bytes} files it references."""
    out, files = [f"# {title}\n"], {}
    for sec in sections:
        out.append(f"## {sec.title}\n\n{sec.text}\n")
        if sec.table:
            out.append(_md_table(sec.table))
        for i, (cap, png) in enumerate(sec.figures):
            name = f"{asset_dir}/{safe_id(sec.title)}_{i}.png"
            files[name] = png
            out.append(f"![{cap}]({name})\n")
    return "\n".join(out), files


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines) + "\n"


def render_html(title: str, sections: list[Section]) -> str:
    """A self-contained HTML page: tables as HTML, plots as base64 PNG data URIs."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
             "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}"
             "pre{background:#f6f6f6;padding:8px;overflow-x:auto}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts.append(_text_html(sec.text))
        if sec.table:
            head, *body = sec.table
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                         + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>"
                                                              for c in r) + "</tr>" for r in body)
                         + "</table>")
        for cap, png in sec.figures:
            b64 = base64.b64encode(png).decode()
            parts.append(f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,"
                         f"{b64}'><figcaption>{html.escape(cap)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _text_html(text: str) -> str:
    """Paragraphs as <p>; Markdown tables inside the text (the compare table) as <pre>."""
    out = []
    for block in text.split("\n\n"):
        if block.strip().startswith("|"):
            out.append(f"<pre>{html.escape(block)}</pre>")
        elif block.strip():
            out.append(f"<p>{html.escape(block)}</p>")
    return "".join(out)


def run(cfg: ReportConfig, run_dir: str | Path, out_dir: str | Path | None = None) -> StageStats:
    """Write `report.md` (+ PNGs in `report_assets/`) and `report.html` for `run_dir`.

    Args:
        cfg: report options.
        run_dir: the run directory (any subset of train/, stats.json, evaluation outputs).
        out_dir: where to write (default: `run_dir`).

    Returns:
        Stage statistics: sections with data, figures, and the HTML path.
    """
    root = Path(run_dir)
    if not root.is_dir():
        from duplexalign.errors import ConfigError

        raise ConfigError(f"report: run directory {root} does not exist")
    out = Path(out_dir) if out_dir else root
    if out.exists() and not out.is_dir():
        from duplexalign.errors import ConfigError

        raise ConfigError(f"report --out: {out} exists and is not a directory")
    evals = find_evaluations(root)
    sections = [training_section(root), issues_section(root), review_section(root),
                comparison_section(root, evals, cfg.resamples), timing_section(root, evals),
                worst_section(root, evals, cfg.worst)]
    title = f"duplexalign report: {root.resolve().name}"
    md, files = render_markdown(title, sections, "report_assets")
    for name, png in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(png)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", render_html(title, sections))
    stats = StageStats(STAGE)
    for sec in sections:
        stats.add("sections_with_data" if sec.table or sec.figures else "sections_empty")
        stats.add("figures", len(sec.figures))
    stats.values["html"] = str(out / "report.html")
    stats.values["evaluations"] = [_rel(d, root) for d in evals]
    if out == root:
        RunDir(root).write_stats(stats)
    return stats
