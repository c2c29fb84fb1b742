"""How human review decisions shape the pairs (`pairs.review: ignore | prefer | only_confirmed`).

Owns the reading of RUN/review/decisions.jsonl.gz for the pairs stage: each target's decision is
the reviewers' consensus (`review.store.resolved`). Under `prefer`, a rejected issue makes no pair,
an edited reply becomes the chosen text, and undecided issues count as the judges said; under
`only_confirmed`, only confirmed or edited issues make pairs. In both, a built pair that reviewers
heard and did not prefer (they preferred the logged reply, or neither) is left out of the mix.
Under `ignore` the log is not read. It knows nothing about audio or strategies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from duplexalign.records import Decision, Issue
from duplexalign.review.store import DECISIONS, resolved
from duplexalign.runs import sha256_file

Drop = tuple[str, str, str]
"""(issue id, reason, detail)."""


@dataclass
class Review:
    """The decisions that count for one run, by target.

    Attributes:
        mode: `pairs.review`.
        issues: issue id -> its decision.
        pairs: pair id -> its decision.
    """

    mode: str = "ignore"
    issues: dict[str, Decision] = field(default_factory=dict)
    pairs: dict[str, Decision] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """True when decisions change what pairs are made."""
        return self.mode != "ignore"

    def filter_issues(self, issues: Iterable[Issue]) -> tuple[list[Issue], dict[str, str],
                                                                list[Drop]]:
        """The issues that may make pairs, the reviewed reply text per `reply_id` (the latest
        edit of any issue about that reply), and the issues left out with their reasons."""
        if not self.active:
            return list(issues), {}, []
        kept, drops = [], []
        edits: dict[str, tuple[float, str]] = {}
        for i in issues:
            d = self.issues.get(i.id)
            if d is not None and d.verdict == "reject":
                drops.append((i.id, "review_rejected", f"{d.reviewer}: {d.reason}".strip(": ")))
                continue
            if d is None and self.mode == "only_confirmed":
                drops.append((i.id, "review_undecided", "pairs.review=only_confirmed"))
                continue
            if d is not None and d.verdict == "edit" and d.text:
                if i.reply_id not in edits or d.time >= edits[i.reply_id][0]:
                    edits[i.reply_id] = (d.time, d.text)
            kept.append(i)
        return kept, {r: t for r, (_, t) in edits.items()}, drops

    def pair_verdict(self, pair_id: str) -> tuple[str, str] | None:
        """(reason, detail) when reviewers did not prefer the built pair's chosen reply."""
        d = self.pairs.get(pair_id) if self.active else None
        if d is None or d.verdict == "prefer_chosen":
            return None
        return "review_pair_" + d.verdict, f"{d.reviewer} at {d.time:.0f}"


def load_review(run_dir: Path, mode: str) -> Review:
    """The run's review decisions under `mode` (an empty `Review` when ignored or absent)."""
    path = run_dir / DECISIONS
    if mode == "ignore" or not path.exists():
        return Review(mode)
    from duplexalign.review.store import DecisionLog

    res = resolved(DecisionLog(run_dir).read())
    out = Review(mode)
    for d in res.values():
        if d.target == "issue":
            out.issues[d.target_id] = d
        elif d.target == "pair":
            out.pairs[d.target_id] = d
    return out


def review_inputs(run_dir: Path, mode: str) -> dict[str, str]:
    """The decisions log's digest for the stage digest (empty when ignored or absent)."""
    path = run_dir / DECISIONS
    if mode == "ignore" or not path.exists():
        return {}
    return {DECISIONS: sha256_file(path)}
