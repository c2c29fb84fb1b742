"""Reply length: words per reply and non-pad text tokens per reply (the paper's "reply length").

Owns splitting the model's text-stream words into replies (model segments with the timing rules'
model merge gap) and counting, per reply, its words and the non-pad text tokens (neither PAD nor EPAD)
in the frames it spans. Prompts are the first LLaMA-Questions by default; the scoring works on any
rollout, so the stage also reports it for every other task's rollouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from duplexalign.evaluate.metrics import Estimate, mean_ci, ratio_ci
from duplexalign.evaluate.rollout import Rollout
from duplexalign.evaluate.speak import Prompt
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import Task, TaskContext
from duplexalign.evaluate.tasks.spoken_qa import load_llama_questions
from duplexalign.segments import to_segments
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID
from duplexalign.timebase import seconds_to_frame

LONG_REPLY_WORDS = 30
DEFAULT_PROMPTS = 100


def reply_lengths(r: Rollout, merge_gap: float) -> list[tuple[int, int]]:
    """(words, non-pad text tokens) of each reply of a rollout.

    Args:
        r: the rollout.
        merge_gap: model words closer than this (seconds) belong to the same reply.
    """
    tokens = np.asarray(r.text_tokens)
    real = (tokens != TEXT_PAD_ID) & (tokens != TEXT_EPAD_ID) & (tokens >= 0)
    out = []
    for seg in to_segments(r.model_words, "model", merge_gap):
        a, b = seconds_to_frame(seg.start), max(seconds_to_frame(seg.end), seconds_to_frame(seg.start) + 1)
        out.append((len(seg.words), int(real[a:b].sum())))
    return out


def length_fields(r: Rollout, merge_gap: float) -> dict[str, Any]:
    """Per-sample reply-length fields (used by every task's samples too)."""
    lens = reply_lengths(r, merge_gap)
    return {"replies": len(lens), "reply_words": [w for w, _ in lens],
            "reply_tokens": [t for _, t in lens]}


class ReplyLengthTask(Task):
    """Words and text tokens per reply, with the share of replies longer than 30 words."""

    name = "reply_length"
    group = "length"
    primary = "words_per_reply"
    higher_is_better = False

    def prompts(self, ctx: TaskContext) -> list[Prompt]:
        rows = load_llama_questions(ctx.data_dir)
        rows = rows[:ctx.limit if ctx.limit is not None else DEFAULT_PROMPTS]
        return [Prompt.question(f"length-{i}", q, ctx.answer_seconds, question=q) for i, q, _ in rows]

    def score(self, r: Rollout, ctx: TaskContext) -> dict[str, Any]:
        return length_fields(r, ctx.rules.model_merge_gap)

    def aggregate(self, samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
        return aggregate_lengths(samples, ctx)


def aggregate_lengths(samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
    """Pooled per-reply means (bootstrap over samples) of the fields of `length_fields`."""
    kw = {"resamples": ctx.resamples, "seed": ctx.seed}
    n = [s["replies"] for s in samples]
    return {
        "words_per_reply": ratio_ci([sum(s["reply_words"]) for s in samples], n, **kw),
        "tokens_per_reply": ratio_ci([sum(s["reply_tokens"]) for s in samples], n, **kw),
        "long_reply_rate": ratio_ci([sum(w > LONG_REPLY_WORDS for w in s["reply_words"])
                                     for s in samples], n, **kw),
        "replies_per_sample": mean_ci(n, **kw),
    }


TASKS.add("reply_length", ReplyLengthTask())
