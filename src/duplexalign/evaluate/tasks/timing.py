"""Timing task: Full-Duplex-Bench-style probes spoken by the user voice, scored from both channels.

Owns the probes (FDB v1 audio is not redistributable, so they are re-created with our TTS from
LLaMA-Questions text, eval.md section 5.4): a *pause* probe (the question split in two by a 1.5 s
mid-turn pause), a *turn-end* probe (the question, then silence) and a *barge-in* probe (the question,
then the user cuts in 2.5 s after its end while the model is expected to be answering). Scoring uses
`evaluate.turns` on the annotated pauses and turn ends; user streams without annotations (logs, the
sandbox) fall back to pauses and turn ends inferred from the user's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duplexalign.evaluate.metrics import Estimate, mean_ci, ratio_ci
from duplexalign.evaluate.rollout import Rollout
from duplexalign.evaluate.speak import Prompt
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import Task, TaskContext
from duplexalign.evaluate.tasks.spoken_qa import load_llama_questions
from duplexalign.evaluate.turns import TimingEvents, timing_events

PROBES = ("pause", "turn_end", "barge_in")
BARGE_IN_TEXT = "wait, sorry, can you say that more simply?"
DEFAULT_PROMPTS = 60


def probe_prompt(kind: str, id: str, question: str, tail: float = 6.0) -> Prompt:
    """The scripted user of one probe kind built from a question, `tail` seconds of silence after."""
    words = question.split()
    if kind == "pause":
        cut = max(1, len(words) // 2)
        return Prompt(id=id, turns=[[" ".join(words[:cut]), " ".join(words[cut:])]], pause=1.5,
                      tail=tail, meta={"probe": kind, "question": question})
    if kind == "barge_in":
        return Prompt(id=id, turns=[[question], [BARGE_IN_TEXT]], gaps=2.5, tail=tail,
                      meta={"probe": kind, "question": question})
    return Prompt(id=id, turns=[[question]], tail=tail, meta={"probe": kind, "question": question})


def score_timing(r: Rollout, ctx: TaskContext) -> dict[str, Any]:
    """Timing events of one rollout as JSON-ready per-sample fields."""
    meta = r.item.meta
    ev = timing_events(r.item.user_words, r.model_words, r.duration, ctx.rules,
                       pauses=[tuple(p) for p in meta["pauses"]] if "pauses" in meta else None,
                       turn_ends=meta.get("turn_ends"))
    return {"probe": meta.get("probe", ""), **ev.to_dict()}


def aggregate_timing(samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
    """Pooled event rates and per-sample mean latencies with CIs."""
    kw = {"resamples": ctx.resamples, "seed": ctx.seed}
    ev = [TimingEvents(**{k: v for k, v in s.items() if k in TimingEvents.__dataclass_fields__})
          for s in samples]

    def lat(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "pause_takeover_rate": ratio_ci([e.pause_takeovers for e in ev], [e.pauses for e in ev], **kw),
        "turn_end_takeover_rate": ratio_ci([e.turn_end_takeovers for e in ev],
                                           [e.turn_ends for e in ev], **kw),
        "response_latency": mean_ci([lat(e.latencies) for e in ev], **kw),
        "no_response_rate": ratio_ci([e.no_responses for e in ev], [e.turn_ends for e in ev], **kw),
        "interruption_rate": ratio_ci([e.interruptions for e in ev], [e.model_turns for e in ev],
                                      **kw),
        "interruptions_per_min": ratio_ci([e.interruptions for e in ev],
                                          [e.duration / 60 for e in ev], **kw),
        "yield_rate": ratio_ci([e.yields for e in ev], [e.barge_ins for e in ev], **kw),
        "stop_latency": mean_ci([lat(e.stop_latencies) for e in ev], **kw),
    }


class TimingTask(Task):
    """Takeovers in pauses and at turn ends, latency, no-response, interruptions, yield on barge-in."""

    name = "timing"
    group = "timing"
    primary = "no_response_rate"
    higher_is_better = False

    def prompts(self, ctx: TaskContext) -> list[Prompt]:
        rows = load_llama_questions(ctx.data_dir)
        n = ctx.limit if ctx.limit is not None else DEFAULT_PROMPTS
        return [probe_prompt(PROBES[i % len(PROBES)], f"timing-{PROBES[i % len(PROBES)]}-{qid}", q,
                             tail=ctx.answer_seconds)
                for i, (qid, q, _) in enumerate(rows[:n])]

    def score(self, r: Rollout, ctx: TaskContext) -> dict[str, Any]:
        return score_timing(r, ctx)

    def aggregate(self, samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
        return aggregate_timing(samples, ctx)


TASKS.add("timing", TimingTask())
