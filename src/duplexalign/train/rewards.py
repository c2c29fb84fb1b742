"""Rewards of an online rollout: named terms, weighted in config, each logged apart.

Owns what a rollout of the policy against a fixed user stream is worth, as a dict of named terms
(higher is better, each about in [-1, 0] per user turn) and their weighted sum:
- `interruption`, `unresponsiveness`, `pause_takeover`, `no_yield`: minus the issues the annotate
  stage's timing rules (`judges/rules.py`, over the turn-taking definitions of `segments.py`) find
  in the rollout, per user turn;
- `latency`: minus the mean wait from a user turn's end to the model's next onset beyond
  `latency_grace`, as a fraction of `rules.unresponsive_after - latency_grace` (a turn the model
  does not answer in time counts as the full wait);
- `content`: minus the replies a content judge flags, per user turn, each counted at the largest
  `category_weights` entry of its flagged categories (1 by default; the sandbox's `oracle`, or the
  annotate stage's LLM judge); a rollout whose judging failed gets no content
  term, and then neither does the rest of its group (`group_totals`): no verdict is made up;
- `repetition`: minus the share of the model's word n-grams that repeat an earlier one (degeneracy).
`turn_terms` splits the same terms by user turn (per-turn credit). It also owns the collapse checks logged per step (repetition rate, silence rate, reply length). It
knows nothing about models, tensors or how rollouts are made: its input is a `Conversation`.
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from duplexalign.config import StageConfig
from duplexalign.judges.base import RULES
from duplexalign.judges.rules import TimingRulesConfig, activity, is_backchannel
from duplexalign.records import CONTENT_CATEGORIES, Conversation, Word
from duplexalign.segments import replies, to_segments, turns
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID
from duplexalign.text import normalize

TIMING_TERMS = ("interruption", "unresponsiveness", "pause_takeover", "no_yield")
TERMS = (*TIMING_TERMS, "latency", "content", "repetition")
DECISION_TERMS = (*TIMING_TERMS, "latency")
"""The terms about *when* the model speaks (mixed credit puts them on the speak/silence decision)."""
WORD_TERMS = ("content", "repetition")
"""The terms about *what* it says (mixed credit puts them on the word chosen when speaking)."""


def _all_rules() -> TimingRulesConfig:
    return TimingRulesConfig(enabled=list(TIMING_TERMS))


class RewardConfig(StageConfig):
    """Reward terms of GRPO (section `train.grpo.rewards`)."""

    weights: dict[str, float] = Field(default_factory=lambda: {
        "interruption": 1.0, "unresponsiveness": 1.0, "pause_takeover": 1.0, "no_yield": 1.0,
        "latency": 0.5,
        "content": 1.0, "repetition": 1.0})
    """Weight per term by name (interruption, unresponsiveness, pause_takeover, no_yield, latency, content,
    repetition); a term left out or at 0 is still logged but does not enter the reward."""
    rules: TimingRulesConfig = Field(default_factory=_all_rules)
    """Thresholds of the timing rules (the same model as `annotate.rules`; keep them equal)."""
    category_weights: dict[str, float] = Field(default_factory=dict)
    """What a flagged reply costs in the `content` term, by content category (helpfulness, safety,
    factuality, instruction_adherence, tone); a reply flagged in several costs its largest, a
    category left out costs 1. Over-refusal is flagged as helpfulness, complying with a harmful
    request as safety: weighting one above the other sets the policy's refusal trade-off."""
    latency_grace: float = Field(0.0, ge=0)
    """Seconds of wait after a user turn that cost nothing in the `latency` term (0: every
    fraction of a second counts). A model that cannot always tell a held pause from a turn end
    can then wait out a pause without losing reward."""
    repetition_n: int = Field(3, ge=1)
    """Length of the word n-grams of the repetition penalty."""

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(TERMS))
        if unknown:
            raise ValueError(f"unknown reward term(s) {unknown}; terms are {list(TERMS)}")
        return v

    @field_validator("category_weights")
    @classmethod
    def _known_categories(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(CONTENT_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown content categor(y/ies) {unknown}; categories are "
                             f"{list(CONTENT_CATEGORIES)}")
        return v


def user_turns(conv: Conversation, cfg: TimingRulesConfig) -> list[tuple[float, float]]:
    """The user's non-backchannel turns `(start, end)` (`segments.turns` over the rules' user
    activity, split at `cfg.turn_end_silence`)."""
    out = []
    for turn in turns(activity(conv, "user", cfg), cfg.turn_end_silence):
        words = [w for s in turn for w in s.words]
        seg = turn[0].model_copy(update={"end": turn[-1].end, "words": words})
        if not is_backchannel(seg, cfg):
            out.append((turn[0].start, turn[-1].end))
    return out


def turn_latencies(conv: Conversation, cfg: TimingRulesConfig) -> list[float]:
    """Per user turn, seconds from its end to the first model reply that starts at or after it,
    capped at `cfg.unresponsive_after` (also when no reply comes in time)."""
    onsets = [s.start for s in to_segments(conv.words.model, "model", cfg.segment_gap)]
    cap = cfg.unresponsive_after
    return [min([o - e for o in onsets if e <= o < e + cap], default=cap)
            for _, e in user_turns(conv, cfg)]


def repetition_rate(words: Sequence[Word], n: int = 3) -> float:
    """Share of the word n-grams of `words` (normalised text) equal to an earlier n-gram; 0 when
    there are none. "a b c a b c" with n=3: n-grams abc, bca, cab, abc: 1 of 4 repeats -> 0.25."""
    toks = [t for w in words for t in normalize(w.text).split()]
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    seen: set[tuple[str, ...]] = set()
    rep = 0
    for g in grams:
        rep += g in seen
        seen.add(g)
    return rep / len(grams) if grams else 0.0


def judge_outcomes(judge: Any, convs: Sequence[Conversation]) -> list[Any]:
    """The content judge's outcome (`judges.content.JudgeOutcome`: verdicts, issues, typed
    failures) of every conversation, all judged concurrently (an LLM judge's client bounds the
    requests in flight at its `concurrency`)."""
    async def all_of():
        return await asyncio.gather(*(judge.judge(c, replies(c)) for c in convs))

    return list(asyncio.run(all_of()))


def flag_costs(outcome: Any, category_weights: dict[str, float] | None = None
               ) -> list[tuple[float, float]] | None:
    """`(start, cost)` of each reply a judge outcome flags: its start in seconds and the largest
    `category_weights` entry of its flagged categories (missing: 1); None when one of its calls
    failed (some replies have no verdict, so what was flagged is unknown)."""
    if outcome.failures:
        return None
    w = category_weights or {}
    return [(float(v.span[0]), max(w.get(c, 1.0) for c in v.flagged))
            for v in outcome.verdicts if v.flagged]


def reward_terms(conv: Conversation, cfg: RewardConfig,
                 flagged: list[tuple[float, float]] | None = None) -> dict[str, float]:
    """The named terms of one rollout (higher is better): the per-user-turn average of
    `turn_terms`, so each timing term is minus its issues per user turn, `latency` minus the
    mean graced wait over its span, `content` minus the flagged replies' summed cost per turn.

    Args:
        conv: the rollout as a conversation: the model's words from its text stream, the user's
            fixed words, the duration and the user side's meta.
        cfg: reward options.
        flagged: `flag_costs` of a content judge's outcome; None leaves the `content` term out.
    """
    return turn_terms(conv, cfg, flagged).mean()


@dataclass(frozen=True)
class TurnTerms:
    """A rollout's reward terms per user turn, for per-turn credit (`turn_terms`).

    Attributes:
        starts: where each turn's window of the rollout opens, in seconds: 0 for the first turn,
            then each later user turn's start; a window runs to the next one's start (the last to
            the end), so it holds the user's turn and the model's reply to it.
        terms: the named terms of what happened in each window (same names as `reward_terms`).
    """

    starts: tuple[float, ...]
    terms: tuple[dict[str, float], ...]

    def mean(self) -> dict[str, float]:
        """Each term averaged over the turns: the whole rollout's per-user-turn rates."""
        return {name: float(np.mean([row[name] for row in self.terms])) for name in self.terms[0]}


def fault_time(issue: Any) -> float:
    """When a timing issue's fault happens: the reply's start (a cut-in, a jump-in, the silence
    after a turn), or the user's barge-in when the reply began before it (no_yield: the reply
    was fine until the user spoke)."""
    return max(issue.reply_span[0], issue.user_turn[0] if issue.user_turn else -math.inf)


def turn_terms(conv: Conversation, cfg: RewardConfig,
               flagged: list[tuple[float, float]] | None = None) -> TurnTerms:
    """`reward_terms` split by user turn: each timing issue, latency and flagged reply is counted
    in the window of the turn it concerns (an issue or reply by where it starts: a cut-in or a
    jump-in into turn j starts inside turn j, the silence after turn j and the reply to it start
    after it ends; a reply that does not yield to a barge-in, at the barge-in), and `repetition` (a property of the whole rollout) is given to every turn.
    Over the turns the terms average to `reward_terms`' (per-user-turn rates). A rollout without
    user turns has one window, the whole of it.

    Args:
        conv: the rollout as a conversation.
        cfg: reward options.
        flagged: `flag_costs` of the judge's outcome; None leaves the `content` term out.
    """
    user = user_turns(conv, cfg.rules)
    starts = [0.0] + [s for s, _ in user[1:]]
    n = len(starts)

    def window(t: float) -> int:
        return max(0, bisect_right(starts, t) - 1)

    rows: list[dict[str, float]] = [{} for _ in range(n)]
    for name in TIMING_TERMS:
        counts = [0.0] * n
        for issue in RULES.get(name)(conv, cfg.rules):
            counts[window(fault_time(issue))] += 1.0
        for row, c in zip(rows, counts, strict=True):
            row[name] = -c
    span = max(cfg.rules.unresponsive_after - cfg.latency_grace, 1e-6)
    lat = turn_latencies(conv, cfg.rules)
    for j, row in enumerate(rows):
        row["latency"] = -max(0.0, lat[j] - cfg.latency_grace) / span if lat else 0.0
    if flagged is not None:
        costs = [0.0] * n
        for start, cost in flagged:
            costs[window(start)] += cost
        for row, c in zip(rows, costs, strict=True):
            row["content"] = -c
    rep = -repetition_rate(conv.words.model, cfg.repetition_n)
    for row in rows:
        row["repetition"] = rep
    return TurnTerms(starts=tuple(starts), terms=tuple(rows))


def total_reward(terms: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted sum of the terms (a weighted term that was not computed is an error)."""
    missing = [k for k, w in weights.items() if w and k not in terms]
    if missing:
        raise KeyError(f"reward term(s) {missing} have a weight but were not computed")
    return float(sum(w * terms[k] for k, w in weights.items() if w))


def group_totals(scored: Sequence[dict[str, float]], weights: dict[str, float],
                 group_size: int) -> tuple[list[float], int]:
    """Total reward of each rollout, the rollouts in groups of `group_size` consecutive ones.

    A group in which some rollout has no `content` term (its judging failed) is totalled without
    the content term for every rollout of the group, and `content` is removed from their terms
    (in place), so it is not logged either: the advantages compare the rollouts of one group with
    each other, so they must all be scored on the same terms, and a failed verdict is never
    replaced by a made-up one. The timing and repetition terms of the group still train.

    Returns:
        The totals (in the order of `scored`) and how many groups have no content term (all of
        them when no judge gives one).
    """
    if len(scored) % group_size:
        raise ValueError(f"{len(scored)} rollouts do not make groups of {group_size}")
    totals, dropped = [], 0
    w_without = {k: v for k, v in weights.items() if k != "content"}
    for g in range(0, len(scored), group_size):
        group, w = scored[g:g + group_size], weights
        if any("content" not in t for t in group):
            for t in group:
                t.pop("content", None)
            w, dropped = w_without, dropped + 1
        totals += [total_reward(t, w) for t in group]
    return totals, dropped


def collapse_checks(conv: Conversation, text_tokens: np.ndarray, n: int = 3) -> dict[str, float]:
    """What a collapsing policy changes first: `repetition_rate` of its words, `silence_rate`
    (share of text frames that are PAD or EPAD, of `text_tokens` [T]) and `reply_length` (words
    per reply; 0 without replies)."""
    reps = to_segments(conv.words.model, "model")
    t = np.asarray(text_tokens)
    silent = float(np.isin(t, (TEXT_PAD_ID, TEXT_EPAD_ID)).mean()) if t.size else 1.0
    return {"repetition_rate": repetition_rate(conv.words.model, n), "silence_rate": silent,
            "reply_length": float(np.mean([len(s.words) for s in reps])) if reps else 0.0}
