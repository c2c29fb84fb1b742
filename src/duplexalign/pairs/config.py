"""Options of the pairs stage (section `pairs:` of a preset).

Owns every knob of pair construction: which strategy serves which issue category, voices, gaps,
window and context bounds, the per-conversation policy, filters and the category mix. It holds no logic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from duplexalign.config import StageConfig
from duplexalign.engine import EngineConfig
from duplexalign.judges.endpoint import LLMEndpoint


def _default_strategy_for() -> dict[str, str]:
    return {"helpfulness": "rewrite", "safety": "rewrite", "factuality": "rewrite",
            "instruction_adherence": "rewrite", "tone": "rewrite",
            "interruption": "retime", "pause_takeover": "retime",
            "unresponsiveness": "insert"}


class PairsConfig(StageConfig):
    """Options of the pairs stage."""

    strategy_for: dict[str, str] = Field(default_factory=_default_strategy_for)
    """Issue category -> strategy name; categories not listed (e.g. no_yield) make no pair."""
    voice_transfer: bool = False
    """Build every pair with the `voice` strategy: both variants re-spoken by `alt_voice`."""
    model_voice: str = "model"
    """Voice (speech.voices) that speaks chosen replies."""
    alt_voice: str = "model_alt"
    """Voice of the voice-transfer experiment (the paper's M-Alt-Vox)."""
    gap_min: float = Field(0.2, ge=0.0)
    """Shortest natural gap (s) between the user's turn end and a retimed/inserted reply."""
    gap_max: float = Field(0.5, ge=0.0)
    """Longest natural gap (s); each pair draws a gap in [gap_min, gap_max] from its id and seed."""
    tail: float = Field(0.24, ge=0.0)
    """Seconds of window kept after the later of the two variants ends."""
    turn_gap: float = Field(0.8, gt=0.0)
    """Silence (s) that separates two user turns when finding the end of the interrupted turn."""
    retime_rewrite: bool = True
    """Retimed replies that also carry a content issue with an improved reply speak that reply."""
    max_content_score: int = Field(5, ge=1, le=5)
    """Content issues scoring above this (1 bad .. 5 good) are ignored; annotate already emits only
    problems, so the default keeps every issue."""
    max_pairs_per_conversation: int = Field(2, ge=1)
    """The paper's policy: the first problematic reply plus at most one more."""
    max_context_frames: int = Field(3000, gt=0)
    """Frames of context + window a training example may hold (Moshi's context is 3000)."""
    min_window: float = Field(0.4, gt=0.0)
    """Windows shorter than this (s) are dropped (too_short)."""
    max_window: float = Field(40.0, gt=0.0)
    """Windows longer than this (s) are dropped (too_long)."""
    max_chosen_user_overlap: float = Field(1.0, ge=0.0)
    """Chosen replies talking over the user for longer than this (s) are dropped."""
    mix: dict[str, float] | None = None
    """Target share per category (content / interruption / silence); None keeps every pair."""
    seed: int = 0
    """Seed of the gap draws and of the mix subsampling."""
    review: Literal["ignore", "prefer", "only_confirmed"] = "prefer"
    """Human decisions from `duplexalign review` (RUN/review/decisions.jsonl.gz): `prefer` = a
    rejected issue makes no pair, an edited reply is the chosen text, undecided issues count as
    judged; `only_confirmed` = only confirmed or edited issues make pairs; `ignore` = not read.
    Pairs reviewers did not prefer are left out of the mix (pairs/reviewed.py)."""
    rewriter: LLMEndpoint | None = None
    """The rewriter's LLM endpoint (it writes the chosen reply when no judge wrote an improved
    one, and the reply inserted into a silence). None = the endpoint annotate judged with (from
    the run's provenance), or the offline local server; it is started only when a pair needs it."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """Where the candidates are built (TTS, rewriter calls): `engine.py`. On `ray` without a
    rewriter URL the local server is started by the driver up front, for every worker."""

    @model_validator(mode="after")
    def _check(self) -> PairsConfig:
        if self.gap_max < self.gap_min:
            raise ValueError("gap_max must be >= gap_min (pairs.gap_max)")
        if self.mix is not None:
            bad = set(self.mix) - {"content", "interruption", "silence"}
            if bad or any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0:
                raise ValueError("pairs.mix: shares >= 0 for content/interruption/silence, sum > 0")
        return self
