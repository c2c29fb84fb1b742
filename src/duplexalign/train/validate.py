"""Validation during training: the callback protocol and the built-in held-out preference check.

Owns `Validator` (a callable `(model, step) -> {metric: value}`; the evaluation stage and the sandbox
plug rollout metrics in through it), `HeldOutPreferences` (preference accuracy, margin and the drift of
chosen log-probs per frame on held-out pairs, against cached reference sums), and `composite`, the
weighted score the trainer keeps the best checkpoint on and stops early on, with the bookkeeping both
trainers (DPO and GRPO) share: `validate`, `track_best` and `save_best`. The DPO loss is never a
stopping signal: the sandbox probe found it at ln 2 while the model had already collapsed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from duplexalign.streams.shards import ShardReader, read_index
from duplexalign.train.data import collate
from duplexalign.train.logprobs import WindowScores


class Validator(Protocol):
    """A validation callback: returns metrics (higher or lower is better per the config)."""

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]: ...


class HeldOutPreferences:
    """Held-out preference metrics on index rows `rows` of a streams directory.

    Args:
        streams_dir: streams directory.
        rows: index rows held out from training.
        score: `score(model, batch) -> WindowScores` (the trainer's scoring).
        ref: `[N, 4]` reference table (see refcache).
        batch_size: pairs per forward.
    """

    def __init__(self, streams_dir: str | Path, rows: list[int],
                 score: Callable[[nn.Module, object], WindowScores], ref: torch.Tensor,
                 batch_size: int = 8):
        wanted = set(rows)
        self.items = [(r, e) for r, e in enumerate(read_index(streams_dir)) if r in wanted]
        self.reader = ShardReader(streams_dir)
        self.score, self.ref, self.batch_size = score, ref, batch_size

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        acc, margin, drift, n = 0.0, 0.0, 0.0, 0
        for i in range(0, len(self.items), self.batch_size):
            batch = collate(self.reader, self.items[i:i + self.batch_size])
            s = self.score(model, batch)
            b = len(batch)
            ref = self.ref[batch.rows].to(s.logps)
            rw = (s.logps[:b] - ref[:, 0]) / s.lengths[:b]
            rl = (s.logps[b:] - ref[:, 1]) / s.lengths[b:]
            acc += (rw > rl).float().sum().item()
            margin += (rw - rl).sum().item()
            drift += rw.sum().item()
            n += b
        n = max(n, 1)
        return {"val/accuracy": acc / n, "val/margin_per_frame": margin / n,
                "val/chosen_logp_drift": drift / n}


def composite(metrics: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted sum of named metrics (missing names are an error, so typos are caught)."""
    missing = [k for k in weights if k not in metrics]
    if missing:
        raise KeyError(f"validation metrics {missing} not produced (have {sorted(metrics)})")
    return sum(w * metrics[k] for k, w in weights.items())


def validate(validators: Iterable[Validator], model: nn.Module, step: int,
             weights: dict[str, float]) -> tuple[dict[str, float], float]:
    """Every validator's metrics at `step`, merged, and their `composite` under `weights`."""
    metrics: dict[str, float] = {}
    for v in validators:
        metrics.update(v(model, step))
    return metrics, composite(metrics, weights)


def track_best(score: float, best: float, since_best: int, patience: int
               ) -> tuple[float, int, bool]:
    """`(best, since_best, stop)` after a validation scoring `score`: `since_best` is 0 when the
    score is a new best; `stop` once `patience` validations in a row (0 = never) did not improve."""
    if score > best:
        return score, 0, False
    since_best += 1
    return best, since_best, bool(patience) and since_best >= patience


def save_best(model: nn.Module, out: Path, step: int, score: float) -> None:
    """The best checkpoint: the weights in `out/best` and its step and score in `step.json`."""
    from duplexalign.models.presets import save_model

    save_model(model, out / "best")
    (out / "best" / "step.json").write_text(json.dumps({"step": step, "score": score}))
