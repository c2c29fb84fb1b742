"""Spoken QA tasks: LLaMA-Questions, WebQuestions (test) and a TriviaQA subset.

Owns reading the three benchmark files, the prompt each question becomes (the question spoken by the
user voice, then silence for the answer), and scoring by inclusion accuracy: an answer is correct if
any normalised gold answer or alias is contained in the normalised answer (`judges.reference`). Both
the model's text stream (primary, the paper's S->T number) and, when an ASR backend is given, the ASR
transcript of the model's decoded audio are scored. Reply length in words and the share of answers
over 30 words are reported next to accuracy because inclusion matching rewards long answers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from duplexalign.errors import BadInput
from duplexalign.evaluate.metrics import Estimate, mean_ci
from duplexalign.evaluate.rollout import Rollout
from duplexalign.evaluate.speak import Prompt
from duplexalign.evaluate.tasks import TASKS
from duplexalign.evaluate.tasks.base import Task, TaskContext, answer_words, joined
from duplexalign.timebase import SAMPLE_RATE

LONG_ANSWER_WORDS = 30


def load_llama_questions(data_dir: Path) -> list[tuple[str, str, list[str]]]:
    """(id, question, golds) of `llama_questions/llama_questions_300.tsv`."""
    path = data_dir / "llama_questions" / "llama_questions_300.tsv"
    with _open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(f"llamaq-{i:03d}", r["Questions"].strip(), [r["Answer"].strip()])
            for i, r in enumerate(rows) if r.get("Questions", "").strip()]


def load_webquestions(data_dir: Path) -> list[tuple[str, str, list[str]]]:
    """(id, question, golds) of `webquestions/webquestions_test.json`."""
    path = data_dir / "webquestions" / "webquestions_test.json"
    with _open(path) as f:
        rows = json.load(f)
    return [(r["qId"], r["qText"].strip(), [a for a in r["answers"] if a.strip()]) for r in rows]


def load_triviaqa(data_dir: Path) -> list[tuple[str, str, list[str]]]:
    """(id, question, golds) of `triviaqa/triviaqa_sm_sub.jsonl` (answer plus aliases)."""
    path = data_dir / "triviaqa" / "triviaqa_sm_sub.jsonl"
    out = []
    with _open(path) as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            r = json.loads(line)
            q = r["context"].removeprefix("Question:").rsplit("Answer:", 1)[0].strip()
            golds = list(dict.fromkeys([r["answer"], *r.get("aliases", [])]))
            out.append((f"triviaqa-{i:04d}", q, golds))
    return out


def _open(path: Path):
    if not path.is_file():
        raise BadInput("missing_benchmark_file",
                       f"{path} not found: set evaluate.data_dir to the benchmark data folder")
    return open(path, encoding="utf-8", newline="")


def score_answer(text: str, golds: Sequence[str]) -> bool:
    """Inclusion accuracy of one answer (empty answers are wrong)."""
    from duplexalign.judges.reference import answer_matches

    return bool(text.strip()) and bool(answer_matches(text, list(golds)))


class SpokenQATask(Task):
    """Inclusion-accuracy QA on one benchmark file.

    Args:
        name: registry name.
        loader: reads (id, question, golds) rows from the data folder.
        default_limit: prompts used when the context sets no limit (None = all).
    """

    group = "qa"
    primary = "accuracy"

    def __init__(self, name: str, loader: Callable[[Path], list[tuple[str, str, list[str]]]],
                 default_limit: int | None = None):
        self.name = name
        self.loader = loader
        self.default_limit = default_limit

    def prompts(self, ctx: TaskContext) -> list[Prompt]:
        rows = self.loader(ctx.data_dir)
        limit = ctx.limit if ctx.limit is not None else self.default_limit
        rows = rows[:limit] if limit is not None else rows
        return [Prompt.question(i, q, ctx.answer_seconds, question=q, golds=g)
                for i, q, g in rows]

    def score(self, r: Rollout, ctx: TaskContext) -> dict[str, Any]:
        golds = r.item.meta.get("golds") or []
        words = answer_words(r, ctx.answer_tolerance)
        answer = joined(words)
        out: dict[str, Any] = {"question": r.item.meta.get("question", ""), "golds": golds,
                               "answer": answer, "correct": score_answer(answer, golds),
                               "answer_words": len(words)}
        if ctx.asr is not None and r.model_wav is not None:
            heard = answer_words(r, ctx.answer_tolerance,
                                 ctx.asr.transcribe(r.model_wav, SAMPLE_RATE))
            out["answer_asr"] = joined(heard)
            out["correct_asr"] = score_answer(out["answer_asr"], golds)
        return out

    def aggregate(self, samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
        kw = {"resamples": ctx.resamples, "seed": ctx.seed}
        out = {
            "accuracy": mean_ci([s["correct"] for s in samples], **kw),
            "answer_words": mean_ci([s["answer_words"] for s in samples], **kw),
            "empty_rate": mean_ci([s["answer_words"] == 0 for s in samples], **kw),
            "long_answer_rate": mean_ci([s["answer_words"] > LONG_ANSWER_WORDS for s in samples],
                                        **kw),
        }
        if any("correct_asr" in s for s in samples):
            out["accuracy_asr"] = mean_ci([s.get("correct_asr") for s in samples], **kw)
        return out


TASKS.add("llama_questions", SpokenQATask("llama_questions", load_llama_questions))
TASKS.add("webquestions", SpokenQATask("webquestions", load_webquestions))
TASKS.add("triviaqa", SpokenQATask("triviaqa", load_triviaqa, default_limit=1000))
