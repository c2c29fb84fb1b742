"""Rollout metrics as a validation callback for the trainer.

Owns one function, `make_validation_callback`: it fixes a set of user streams, tasks, sampling settings
and a seed, and returns `callback(model, step) -> {"<task>/<metric>": value}`. The trainer calls it every N
steps to early-stop on behaviour (no-response, interruptions, answer accuracy) rather than on the
preference loss, which the sandbox probe showed is no guide to when to stop. The model's train/eval
mode is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from duplexalign.evaluate.rollout import SamplingConfig, UserItem
from duplexalign.evaluate.tasks.base import TaskContext


def make_validation_callback(items: Sequence[UserItem], tokenizer: Any, ctx: TaskContext,
                             tasks: Sequence[str] = ("timing", "reply_length"),
                             sampling: SamplingConfig | None = None, codec: Any | None = None
                             ) -> Callable[[Any], dict[str, float]]:
    """Build the callback.

    Args:
        items: fixed held-out user streams (with the metadata the tasks need).
        tokenizer: the model's text tokenizer.
        ctx: scoring context (use few bootstrap resamples here: only point values are returned).
        tasks: registered task names to score.
        sampling: rollout settings; default temperature 1 for text (calibration, see the probe).
        codec: decode model audio (only needed for ASR scoring).

    Returns:
        `callback(model, step=None) -> dict[str, float]` with keys `<task>/<metric>` (NaN when
        undefined); it matches the trainer's `Validator` protocol.
    """
    from duplexalign.evaluate.stage import evaluate_items

    sampling = sampling or SamplingConfig(temp_text=1.0, top_k_text=0)

    def callback(model: Any, step: int | None = None) -> dict[str, float]:
        was_training = model.training
        try:
            res = evaluate_items(model, tokenizer, items, tasks, ctx, sampling, codec)
        finally:
            model.train(was_training)
        out: dict[str, float] = {}
        for name in tasks:
            for metric, est in res[name]["metrics"].items():
                v = est.get("value")
                out[f"{name}/{metric}"] = float("nan") if v is None else float(v)
        return out

    return callback
