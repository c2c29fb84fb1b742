"""Which replies become pairs, and the invariant every pair must satisfy.

Owns the per-conversation policy: issues about the same reply are grouped (by `reply_id`), each
group becomes one `Candidate` whose category is its timing issue's (interruption / silence) or else
"content", and per conversation only the first problematic reply plus at most
`max_pairs_per_conversation - 1` more are kept (the paper's default). It also owns `check_invariant`,
which every written pair passes: frame-aligned window, context before it within the bound, variant
words inside it (after its first frame, so their EPAD stays inside), and both window audio files of the
same length.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from duplexalign.pairs.base import Candidate
from duplexalign.pairs.config import PairsConfig
from duplexalign.records import Conversation, Issue, PreferencePair
from duplexalign.timebase import SAMPLES_PER_FRAME, frame_to_seconds, seconds_to_frame

CATEGORY_OF_TIMING = {"interruption": "interruption", "pause_takeover": "interruption",
                      "no_yield": "interruption", "unresponsiveness": "silence"}
"""Pair category of each timing issue category."""

Drop = tuple[str, str, str]
"""(candidate or issue id, reason, detail) of something the policy left out."""


def _is_problem(issue: Issue, cfg: PairsConfig) -> bool:
    return issue.kind == "timing" or issue.score is None or issue.score <= cfg.max_content_score


def group_issues(issues: Iterable[Issue]) -> list[list[Issue]]:
    """One group per reply (`reply_id`), replies in conversation order (their first word, a
    silence before the reply that follows it), issues in time then id order within a group."""
    groups: dict[str, list[Issue]] = {}
    for i in sorted(issues, key=lambda i: (i.reply_span[0], i.reply_span[1], i.id)):
        groups.setdefault(i.reply_id, []).append(i)
    return sorted(groups.values(), key=lambda g: (g[0].reply_words, g[0].reply_span[0]))


def candidates(conv: Conversation, issues: Iterable[Issue], cfg: PairsConfig,
               reviewed: dict[str, str] | None = None) -> tuple[list[Candidate], list[Drop]]:
    """The candidates of one conversation under the policy, and the drops with reasons.

    `reviewed` maps a `reply_id` to a reviewer's edited reply text (the candidate's chosen text).
    """
    drops: list[Drop] = []
    usable: list[Candidate] = []
    problems = []
    for i in issues:
        if _is_problem(i, cfg):
            problems.append(i)
        else:
            drops.append((i.id, "not_a_problem", f"score {i.score} > {cfg.max_content_score}"))
    for group in group_issues(problems):
        timing = [i for i in group if i.kind == "timing"]
        primary = timing[0] if timing else group[0]
        strategy = cfg.strategy_for.get(primary.category)
        if strategy is None:
            drops.append((primary.id, f"no_strategy:{primary.category}",
                          "category not in pairs.strategy_for"))
            continue
        category = CATEGORY_OF_TIMING.get(primary.category, "content") if timing else "content"
        if cfg.voice_transfer:
            strategy = "voice"
        span = (min(i.reply_span[0] for i in group), max(i.reply_span[1] for i in group))
        words = (min(i.reply_words[0] for i in group), max(i.reply_words[1] for i in group))
        if timing:
            span, words = primary.reply_span, primary.reply_words
        usable.append(Candidate(conv, tuple(group), span, category, strategy, primary.reply_id,
                                words, (reviewed or {}).get(primary.reply_id)))
    keep = usable[:cfg.max_pairs_per_conversation]
    for c in usable[cfg.max_pairs_per_conversation:]:
        drops.append((c.id, "policy_extra_reply",
                      f"only the first {cfg.max_pairs_per_conversation} problematic replies"))
    return keep, drops


def check_invariant(pair: PreferencePair, max_context_frames: int,
                    run_dir: Path | None = None) -> list[str]:
    """Problems of `pair` with respect to the pair invariant ([] when it holds).

    Checks: window edges on frame boundaries; context start on a frame, before the window and within
    `max_context_frames` of the window end; every variant word starts after the window's first frame
    and before its end; with `run_dir`, both audio files hold exactly the window's samples.
    """
    out: list[str] = []
    ws, we = (seconds_to_frame(t) for t in pair.window)
    cs = seconds_to_frame(pair.context_start)
    for name, t, f in (("window start", pair.window[0], ws), ("window end", pair.window[1], we),
                       ("context start", pair.context_start, cs)):
        if abs(frame_to_seconds(f) - t) > 1e-9:
            out.append(f"{name} {t} is not on a frame boundary")
    if not cs <= ws < we:
        out.append("need context start <= window start < window end")
    if we - cs > max_context_frames:
        out.append(f"context + window = {we - cs} frames > {max_context_frames}")
    for side, v in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        for w in v.words:
            f = seconds_to_frame(w.start)
            if not ws < f < we and not (f == ws == 0):
                out.append(f"{side} word {w.text!r} at frame {f} outside ({ws}, {we})")
    if run_dir is not None:
        import soundfile as sf

        n = (we - ws) * SAMPLES_PER_FRAME
        for side, v in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            if v.audio is None:
                out.append(f"{side} has no audio")
                continue
            frames = sf.info(str(Path(run_dir) / v.audio)).frames
            if frames != n:
                out.append(f"{side} audio has {frames} samples, window has {n}")
    return out

