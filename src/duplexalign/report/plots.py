"""Matplotlib figures of the report, each returned as PNG bytes (never shown on screen).

Owns the pictures: training curves and reward margins from the trainer's metrics, issue counts per
category, timing histograms (response and stop latencies) of before/after runs, and the two-lane
timeline of one sample (user and model words over time, problem spans shaded). Uses the Agg backend
so it runs headless. Knows nothing about where the data came from.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from duplexalign.records import Word  # noqa: E402


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def training_curves(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> bytes:
    """Line plot of each of `keys` against `step` (one panel per key).

    Args:
        rows: the trainer's metrics lines (`{"step": n, key: value, ...}`).
        keys: metric names to plot (missing values are skipped).
    """
    n = max(1, len(keys))
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=False):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
        ax.set_ylabel(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    return _png(fig)


def issue_counts(counts: dict[str, int]) -> bytes:
    """Horizontal bar chart of issue counts per category."""
    items = sorted(counts.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#c0504d")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    ax.set_xlabel("issues")
    return _png(fig)


def histograms(series: dict[str, dict[str, Sequence[float]]], xlabel: str = "seconds") -> bytes:
    """One panel per measure, overlaid histograms per run.

    Args:
        series: measure name -> run label -> values.
        xlabel: x-axis label.
    """
    n = max(1, len(series))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3), squeeze=False)
    for ax, (measure, runs) in zip(axes[0], series.items(), strict=False):
        for label, values in runs.items():
            if len(values):
                ax.hist(values, bins=20, alpha=0.5, label=f"{label} (n={len(values)})")
        ax.set_title(measure, fontsize=9)
        ax.set_xlabel(xlabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _png(fig)


def timeline(user: Sequence[Word], model: Sequence[Word], duration: float,
             spans: Sequence[tuple[float, float, str]] = (), title: str = "") -> bytes:
    """Two-lane timeline: user words on the top lane, model words below, problem spans shaded.

    Args:
        user: the user's timed words.
        model: the model's timed words.
        duration: x-axis length in seconds.
        spans: (start, end, label) intervals to highlight (e.g. an interruption, a silence).
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(max(8, duration * 0.6), 2.4))
    for lane, words, color in ((1, user, "#4f81bd"), (0, model, "#9bbb59")):
        for i, w in enumerate(words):
            ax.broken_barh([(w.start, max(w.end - w.start, 0.04))], (lane - 0.3, 0.6),
                           facecolors=color, alpha=0.8)
            ax.text(w.start, lane + 0.35 + 0.12 * (i % 2), w.text, fontsize=6, clip_on=True)
    for s, e, label in spans:
        ax.axvspan(s, max(e, s + 0.05), color="#c0504d", alpha=0.18)
        ax.text(s, -0.75, label, fontsize=7, color="#c0504d")
    ax.set_yticks([0, 1], ["model", "user"])
    ax.set_ylim(-0.9, 1.9)
    ax.set_xlim(0, duration)
    ax.set_xlabel("seconds")
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)
