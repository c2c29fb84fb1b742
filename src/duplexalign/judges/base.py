"""The two judge registries and what a judge hands back.

Owns `RULES` (timing rules: pure functions `rule(conv, cfg, vad, reps) -> list[Issue]` over a
conversation's timed words, optional VAD segments and its replies with their ids) and `JUDGES`
(content judges: factories `make(cfg: LLMJudgeConfig, client: LLMClient | None)` returning an object
with `async judge(conv, reps) -> JudgeOutcome` and a `redactions` Counter). `reps` are the model's
replies as `segments.replies` made them, once per conversation, so every issue names its reply by
the same id. A factory that sets the attribute `needs_llm = True` gets a client for the configured
endpoint (`endpoint.open_judge`, which annotate and online training use, starts the local server
when no URL is given); others get None. It knows nothing about HTTP or thresholds; those live in
`llm.py`/`content.py` and `rules.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from duplexalign.records import Conversation, Issue, Segment
from duplexalign.registry import Registry

VadSegments = dict[str, Sequence[tuple[float, float]]]
"""Speech intervals (seconds) per channel ("model"/"user") from a VAD, when audio was available."""

RuleFn = Callable[..., list[Issue]]

RULES: Registry[RuleFn] = Registry("timing rule", modules=("duplexalign.judges.rules",))
# The sandbox's `oracle` judge (scenario ground truth) registers itself from its own package; it is
# listed here by name so that `annotate --judge oracle` finds it without importing the sandbox first.
JUDGES: Registry[Callable[..., Any]] = Registry(
    "content judge", modules=("duplexalign.judges.content", "duplexalign.sandbox.oracle"))


def run_rules(conv: Conversation, names: Sequence[str], cfg: Any,
              vad: VadSegments | None = None, reps: list[Segment] | None = None) -> list[Issue]:
    """Apply the timing rules `names` (registry names) to `conv` and return all their issues
    (`reps`: the replies with their ids; None lets each rule make them under `cfg.segment_gap`)."""
    out: list[Issue] = []
    for name in names:
        out.extend(RULES.get(name)(conv, cfg, vad, reps))
    return out
