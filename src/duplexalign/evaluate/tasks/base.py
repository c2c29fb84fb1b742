"""The evaluation-task contract and the context a task scores with.

Owns `Task` (prompts -> per-sample scores -> aggregate estimates), `TaskContext` (where data lives,
the optional ASR backend, refusal classifier and LLM judge, timing thresholds, bootstrap settings) and
the answer-window helpers shared by tasks. A task never runs the model: the stage (or a caller such as
the sandbox) rolls out `UserItem`s and hands the `Rollout`s to `score`, so the same scoring works on
any user streams that carry the metadata the task needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duplexalign.evaluate.metrics import DEFAULT_RESAMPLES, Estimate
from duplexalign.evaluate.rollout import Rollout
from duplexalign.evaluate.speak import Prompt
from duplexalign.evaluate.turns import TimingRules
from duplexalign.records import Word

RefusalFn = Callable[[str, str], str]
"""(prompt, reply) -> "1_full_compliance" | "2_full_refusal" | "3_partial_refusal"."""

COMPLIANCE, REFUSAL, PARTIAL = "1_full_compliance", "2_full_refusal", "3_partial_refusal"


@dataclass
class TaskContext:
    """What tasks need besides the rollouts.

    Attributes:
        data_dir: the benchmark data folder (`../shared/data` layout).
        limit: at most this many prompts per task (None = the task's default).
        asr: an ASR backend (`transcribe(wav, sr) -> [Word]`) to score the model's audio, or None.
        refusal: refusal classifier; None = the reference string matcher of `judges.reference`.
        judge: an LLM judge client for multi-turn ratings, or None (a task that needs one opens
            `judge_endpoint`, starting the local server when it has no URL).
        judge_endpoint: the endpoint to open when `judge` is None (None: the local server).
        rules: timing thresholds.
        answer_tolerance: model words starting this many seconds before the end of the question still
            belong to the answer.
        answer_seconds: silence after the user's last turn in which the model may answer.
        alert_path: the user's local ALERT JSONL file, or None.
        resamples: bootstrap resamples.
        seed: bootstrap seed.
        options: task-specific extra options (by task name).
    """

    data_dir: Path
    limit: int | None = None
    asr: Any | None = None
    refusal: RefusalFn | None = None
    judge: Any | None = None
    judge_endpoint: Any | None = None
    rules: TimingRules = field(default_factory=TimingRules)
    answer_tolerance: float = 0.5
    answer_seconds: float = 8.0
    alert_path: Path | None = None
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def classify_refusal(self, prompt: str, reply: str) -> str:
        """The response class of `reply` (see `RefusalFn`)."""
        if self.refusal is not None:
            return self.refusal(prompt, reply)
        from duplexalign.judges.reference import is_refusal

        return REFUSAL if is_refusal(prompt, reply) else COMPLIANCE


class Task(ABC):
    """An evaluation task: its prompts, how one rollout is scored, and how scores aggregate.

    Attributes:
        name: registry name.
        group: "qa", "safety", "length", "timing" or "multiturn" (columns of the compare table).
        primary: the metric reported in the paper-style table.
        higher_is_better: direction of `primary`.
    """

    name: str = ""
    group: str = ""
    primary: str = ""
    higher_is_better: bool = True

    @abstractmethod
    def prompts(self, ctx: TaskContext) -> list[Prompt]:
        """The scripted users of this task, read from `ctx.data_dir`."""

    @abstractmethod
    def score(self, r: Rollout, ctx: TaskContext) -> dict[str, Any]:
        """JSON-ready per-sample fields for one rollout."""

    @abstractmethod
    def aggregate(self, samples: Sequence[dict[str, Any]], ctx: TaskContext) -> dict[str, Estimate]:
        """Metric name -> estimate with its 95 % CI, from the per-sample fields of `score`."""

    def extras(self, ctx: TaskContext) -> dict[str, Any]:
        """Task-level results that do not come from rollouts (e.g. classifier agreement)."""
        return {}


def question_end(r: Rollout) -> float:
    """End of the user's first turn: the annotated turn end, else the last user word, else 0."""
    ends = r.item.meta.get("turn_ends") or []
    if ends:
        return float(ends[0])
    return max((w.end for w in r.item.user_words), default=0.0)


def answer_words(r: Rollout, tolerance: float, words: Sequence[Word] | None = None) -> list[Word]:
    """Model words of the answer window: from the question end (minus `tolerance`) to the next user
    turn start or the end of the rollout.

    Args:
        r: the rollout.
        tolerance: seconds before the question end that still count.
        words: the model words to window (default: the text stream's words).
    """
    start = question_end(r) - tolerance
    later = [t for t in r.item.meta.get("turn_starts", [])[1:] if t > start]
    end = min(later) if later else r.duration + 1e-6
    src = r.model_words if words is None else words
    return [w for w in src if start <= w.start < end]


def joined(words: Sequence[Word]) -> str:
    """Words joined by spaces."""
    return " ".join(w.text for w in words)
