"""Evaluation tasks, registered by name in `TASKS`; `TASK_GROUPS` names sets of tasks.

Each task module registers a `Task` instance: spoken QA (`llama_questions`, `webquestions`,
`triviaqa`), safety (`xstest`, `alert`), `reply_length`, `timing` and `multiturn`.
"""

from __future__ import annotations

from duplexalign.errors import ConfigError
from duplexalign.registry import Registry

TASKS: Registry = Registry("eval task", modules=(
    "duplexalign.evaluate.tasks.spoken_qa",
    "duplexalign.evaluate.tasks.safety",
    "duplexalign.evaluate.tasks.reply_length",
    "duplexalign.evaluate.tasks.timing",
    "duplexalign.evaluate.tasks.multiturn",
))

TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "spoken_qa": ("llama_questions", "webquestions", "triviaqa"),
    "safety": ("xstest",),
    "paper": ("llama_questions", "webquestions", "triviaqa", "xstest", "reply_length", "timing"),
}


def resolve_tasks(spec: str | list[str]) -> list[str]:
    """Expand a comma-separated list of task or group names into task names (order kept, no repeats).

    Raises:
        ConfigError: an unknown name (with suggestions).
    """
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ConfigError("evaluate.tasks: give at least one task")
    out: list[str] = []
    for n in names:
        for t in TASK_GROUPS.get(n, (n,)):
            TASKS.get(t)
            if t not in out:
                out.append(t)
    return out
