"""Multi-turn quality: an LLM judge rates coherence, engagement and relevance of long rollouts.

Owns the scripted multi-turn users (the staged goals of Full-Duplex-Bench v2 tasks, spoken one turn
after another with time for the model to answer), the time-stamped two-channel transcript cut at
30, 90 and 120 s (the paper's human-evaluation buckets), the judge request (a pure payload: messages
and a JSON schema) and its parsing. The judge is any client with `run_many([LLMRequest]) ->
[LLMResult | LLMFailure]` (`judges.llm.LLMClient`), or, when none is given, the endpoint of
`evaluate.judge` opened here (the offline local server when it has no URL); failed calls become
per-sample failure records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from duplexalign.errors import BadInput
from duplexalign.evaluate.metrics import Estimate, mean_ci
from duplexalign.evaluate.rollout import Rollout
from duplexalign.evaluate.speak import Prompt
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import Task, TaskContext
from duplexalign.records import Word

HORIZONS = (30.0, 90.0, 120.0)
DIMENSIONS = ("coherence", "engagement", "relevance")
PROMPT_ID = "multiturn_v1"
SYSTEM = (
    "You rate a spoken conversation between a USER and an AI ASSISTANT. The transcript gives each "
    "speaker's words with the time (seconds) at which they started; the two may overlap. Rate the "
    "ASSISTANT only, each from 1 (very poor) to 5 (excellent): coherence (fluent, consistent, makes "
    "sense as speech), engagement (keeps the conversation going naturally, reacts to the user), "
    "relevance (helpful and on topic for what the user said). An assistant that stays silent gets 1 "
    "for engagement and relevance. Answer with JSON only."
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {d: {"type": "integer", "minimum": 1, "maximum": 5} for d in DIMENSIONS}
    | {"reason": {"type": "string"}},
    "required": [*DIMENSIONS],
}


def transcript(user: Sequence[Word], model: Sequence[Word], until: float, gap: float = 0.8) -> str:
    """Time-stamped transcript of both channels up to `until` seconds.

    Each channel's words are grouped into runs split at gaps over `gap` seconds; runs are listed by
    start time as `[12.3s] USER: ...`.
    """
    from duplexalign.segments import to_segments

    runs = []
    for name, words in (("USER", user), ("ASSISTANT", model)):
        for seg in to_segments([w for w in words if w.start < until], "user", gap):
            runs.append((seg.start, name, seg.text))
    runs.sort()
    return "\n".join(f"[{s:.1f}s] {n}: {t}" for s, n, t in runs) or "(nobody spoke)"


def judge_messages(text: str, horizon: float) -> list[dict[str, str]]:
    """Chat messages asking for the three ratings of the first `horizon` seconds."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"First {horizon:.0f} seconds of the conversation:\n{text}"}]


def parse_ratings(data: Any) -> dict[str, int]:
    """The three integer ratings of a judge answer (already schema-validated or a JSON string)."""
    if isinstance(data, str):
        data = json.loads(data)
    out = {}
    for d in DIMENSIONS:
        v = int(data[d])
        if not 1 <= v <= 5:
            raise ValueError(f"{d} rating {v} outside 1..5")
        out[d] = v
    return out


def load_fdb_v2_scripts(data_dir) -> list[tuple[str, list[str]]]:
    """(task id, user turns) from Full-Duplex-Bench v2's staged tasks (the staged goals, in order)."""
    path = data_dir / "full_duplex_bench" / "v2" / "prompts_staged_200.json"
    if not path.is_file():
        raise BadInput("missing_benchmark_file", f"{path} not found: set evaluate.data_dir")
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for split in data["splits"].values():
        for t in split["tasks"]:
            turns = [v.strip() for _, v in sorted(t.get("staged_reveal", {}).items()) if v.strip()]
            if turns:
                out.append((t["id"], turns))
    return out


class MultiTurnTask(Task):
    """LLM-judged coherence, engagement and relevance over the first 30 / 90 / 120 s.

    Options (`evaluate.options.multiturn`): `turn_gap` seconds of silence after each user turn
    (default 10), `max_duration` (default 120).
    """

    name = "multiturn"
    group = "multiturn"
    primary = "relevance@120s"

    def prompts(self, ctx: TaskContext) -> list[Prompt]:
        opts = ctx.options.get(self.name, {})
        scripts = load_fdb_v2_scripts(ctx.data_dir)
        scripts = scripts[:ctx.limit] if ctx.limit is not None else scripts[:50]
        gap = float(opts.get("turn_gap", 10.0))
        max_d = float(opts.get("max_duration", max(HORIZONS)))
        return [Prompt(id=f"multiturn-{tid}", turns=[[t] for t in turns], gaps=gap, tail=max_d,
                       max_duration=max_d, meta={"task": tid}) for tid, turns in scripts]

    def score(self, r: Rollout, ctx: TaskContext) -> dict[str, Any]:
        return self.score_many([r], ctx)[0]

    def score_many(self, rollouts: Sequence[Rollout], ctx: TaskContext) -> list[dict[str, Any]]:
        """Judge every rollout at every horizon in one batch of concurrent requests."""
        from duplexalign.judges.llm import LLMFailure, LLMRequest

        reqs, index = [], []
        for i, r in enumerate(rollouts):
            for h in HORIZONS:
                if h - r.duration > 1e-6 and h != min(HORIZONS):
                    continue  # the rollout is shorter than this bucket: nothing new to rate
                text = transcript(r.item.user_words, r.model_words, h)
                reqs.append(LLMRequest(messages=judge_messages(text, h), schema=SCHEMA))
                index.append((i, h))
        with ExitStack() as stack:
            judge = ctx.judge
            if judge is None:  # no URL given: the offline local server, as annotate starts it
                from duplexalign.judges.endpoint import LLMEndpoint, open_client

                judge = open_client(ctx.judge_endpoint or LLMEndpoint(), stack)
            results = judge.run_many(reqs)
        out: list[dict[str, Any]] = [{"ratings": {}, "failures": []} for _ in rollouts]
        for (i, h), res in zip(index, results, strict=True):
            key = f"{h:.0f}s"
            if isinstance(res, LLMFailure):
                out[i]["failures"].append({"horizon": key, **res.to_dict()})
                continue
            try:
                out[i]["ratings"][key] = parse_ratings(res.data)
            except (KeyError, ValueError, TypeError) as e:
                out[i]["failures"].append({"horizon": key, "kind": "bad_ratings", "detail": str(e)})
        for o in out:
            o["judge"] = {"prompt_id": PROMPT_ID, "model": getattr(judge, "model", "")}
        return out

    def aggregate(self, samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
        kw = {"resamples": ctx.resamples, "seed": ctx.seed}
        out = {}
        for h in HORIZONS:
            key = f"{h:.0f}s"
            for d in DIMENSIONS:
                out[f"{d}@{key}"] = mean_ci([s["ratings"].get(key, {}).get(d) for s in samples],
                                            **kw)
        out["judge_failure_rate"] = mean_ci([bool(s["failures"]) for s in samples], **kw)
        return out


TASKS.add("multiturn", MultiTurnTask())
