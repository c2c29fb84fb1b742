"""Judge calibration against human review, and agreement between reviewers.

Owns the arithmetic the report shows: per issue category, the judges' precision (of the issues
reviewers decided, the share they confirmed or edited) and recall (of the problems reviewers know
of, confirmed issues plus the replies they flagged as missed, the share a judge found), and Cohen's
kappa between every two reviewers on the issues both decided (confirm/edit vs reject). Decisions
resolve as everywhere (`store.latest`, `store.consensus`). It reads records only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from duplexalign.records import Decision, Issue
from duplexalign.review.store import consensus, latest


@dataclass(frozen=True)
class CategoryCalibration:
    """One category's counts and the judges' precision and recall against reviewers.

    Attributes:
        category: the issue category.
        issues: issues the judges found in this category.
        confirmed: of them, confirmed or edited by reviewers.
        rejected: of them, rejected.
        missed: problems of this category reviewers flagged on replies no judge flagged for it.
    """

    category: str
    issues: int
    confirmed: int
    rejected: int
    missed: int

    @property
    def precision(self) -> float | None:
        """confirmed / (confirmed + rejected), None when nothing was decided."""
        n = self.confirmed + self.rejected
        return self.confirmed / n if n else None

    @property
    def recall(self) -> float | None:
        """confirmed / (confirmed + missed), None when reviewers know of no problem."""
        n = self.confirmed + self.missed
        return self.confirmed / n if n else None


def _agrees(d: Decision) -> str:
    return "reject" if d.verdict == "reject" else "confirm"


def calibration(issues: Iterable[Issue], decisions: Iterable[Decision]
                ) -> list[CategoryCalibration]:
    """Per-category judge precision and recall against the reviewers' consensus."""
    per = latest(decisions)
    found: Counter = Counter()
    confirmed: Counter = Counter()
    rejected: Counter = Counter()
    judged: set[tuple[str, str]] = set()
    for i in issues:
        found[i.category] += 1
        judged.add((i.reply_id, i.category))
        votes = per.get(f"issue:{i.id}")
        if votes:
            if _agrees(consensus(votes)) == "confirm":
                confirmed[i.category] += 1
            else:
                rejected[i.category] += 1
    missed: Counter = Counter()
    for votes in per.values():
        d = next(iter(votes.values()))
        if d.verdict == "flag" and (d.target_id, d.category) not in judged:
            missed[d.category] += 1
    cats = sorted(set(found) | set(missed))
    return [CategoryCalibration(c, found[c], confirmed[c], rejected[c], missed[c]) for c in cats]


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items: (p_o - p_e) / (1 - p_e), where
    p_o is the observed agreement and p_e the agreement expected from each rater's label shares.
    None when there are no items or p_e = 1 (both always gave the same single label)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    n = len(a)
    if n == 0:
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if pe == 1.0:
        return None
    return (po - pe) / (1 - pe)


@dataclass(frozen=True)
class PairAgreement:
    """Two reviewers' agreement on the issues both decided."""

    a: str
    b: str
    shared: int
    observed: float | None
    kappa: float | None


def reviewer_agreement(decisions: Iterable[Decision]) -> list[PairAgreement]:
    """Cohen's kappa for every two reviewers, on the issues both decided (latest decisions)."""
    per = {k: v for k, v in latest(decisions).items() if k.startswith("issue:")}
    reviewers = sorted({r for v in per.values() for r in v})
    out = []
    for ra, rb in combinations(reviewers, 2):
        shared = [(_agrees(v[ra]), _agrees(v[rb])) for v in per.values() if ra in v and rb in v]
        la, lb = [x for x, _ in shared], [y for _, y in shared]
        obs = sum(x == y for x, y in shared) / len(shared) if shared else None
        out.append(PairAgreement(ra, rb, len(shared), obs, cohen_kappa(la, lb)))
    return out
