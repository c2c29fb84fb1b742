"""Filters with reasons, and mixing to target shares per category.

Owns the decisions that drop a built pair: a window too short or too long and a chosen reply that
talks over the user (`pair_verdict`, one pair alone), then a duplicate of an earlier pair (same
conversation, window and chosen text) and a window that overlaps a previous pair of the same
conversation (`PairFilter.admit`, in order of construction). Each filter returns a reason key
(counted in stats.json as `dropped/<reason>`) or None. `mix` subsamples pairs to target shares per category
(content / interruption / silence), deterministically from the seed; `mix_ids` does it from
(id, category) rows so the stage never holds the pairs themselves.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from duplexalign.pairs.config import PairsConfig
from duplexalign.records import Conversation, PreferencePair
from duplexalign.segments import overlap


def pair_verdict(pair: PreferencePair, conv: Conversation, cfg: PairsConfig
                 ) -> tuple[str, str] | None:
    """(reason, detail) when `pair` must be dropped whatever else its conversation gave (a window
    too short or too long, a chosen reply that talks over the user), else None. Needs no other
    pair, so the engine's workers run it where they build the pair."""
    length = pair.window[1] - pair.window[0]
    if length < cfg.min_window:
        return "too_short", f"window {length:.2f}s < {cfg.min_window}s"
    if length > cfg.max_window:
        return "too_long", f"window {length:.2f}s > {cfg.max_window}s"
    talk = user_overlap(pair, conv)
    if talk > cfg.max_chosen_user_overlap:
        return "chosen_overlaps_user", f"chosen talks over the user for {talk:.2f}s"
    return None


PairKey = tuple[str, float, float, str]
"""(conversation id, window start, window end, chosen text): what makes two pairs duplicates."""


class PairFilter:
    """Stateful filter over the pairs of one conversation (each filter checks pairs of the same
    conversation against each other), applied in order of construction.

    Args:
        cfg: the stage config.
    """

    def __init__(self, cfg: PairsConfig):
        self.cfg = cfg
        self._seen: set[PairKey] = set()
        self._windows: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def remember(self, pair: PreferencePair) -> None:
        """Record a kept pair (also used to replay pairs kept by an earlier, resumed run)."""
        self._remember(pair_key(pair), pair.window)

    def _remember(self, key: PairKey, window: tuple[float, float]) -> None:
        self._seen.add(key)
        self._windows[key[0]].append(window)

    def check(self, pair: PreferencePair, conv: Conversation) -> tuple[str, str] | None:
        """(reason, detail) if `pair` must be dropped, else None (and the pair is remembered):
        `pair_verdict`, then `admit`."""
        return pair_verdict(pair, conv, self.cfg) or self.admit(pair_key(pair), pair.window)

    def admit(self, key: PairKey, window: tuple[float, float]) -> tuple[str, str] | None:
        """The checks against the pairs kept before in the conversation (a duplicate, an
        overlapping window) of a pair that passed `pair_verdict`, from its `pair_key` and window:
        (reason, detail), or None (and the pair is remembered)."""
        if key in self._seen:
            return "duplicate", "same conversation, window and chosen text as an earlier pair"
        for w in self._windows[key[0]]:
            if overlap(w, window) > 0:
                return "overlaps_previous_pair", f"window {window} overlaps {w}"
        self._remember(key, window)
        return None


def pair_key(pair: PreferencePair) -> PairKey:
    """See `PairKey`."""
    return (pair.conversation_id, round(pair.window[0], 3), round(pair.window[1], 3),
            pair.chosen.text.lower())


def user_overlap(pair: PreferencePair, conv: Conversation) -> float:
    """Seconds during which the chosen reply's words overlap the user's words."""
    total = 0.0
    for m in pair.chosen.words:
        for u in conv.words.user:
            if u.start >= m.end:
                break
            total += overlap((m.start, m.end), (u.start, u.end))
    return total


def mix(pairs: Sequence[PreferencePair], shares: dict[str, float] | None, seed: int = 0
        ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Subsample `pairs` to the target `shares` per category.

    The largest total N with N * share_c <= available_c for every category with a positive share is
    kept, round(N * share_c) per category, chosen by a seeded hash of the pair id. Categories with
    share 0 are dropped entirely.

    Returns:
        (kept, dropped), each in input order.
    """
    if not shares:
        return list(pairs), []
    keep_ids = mix_ids(((p.id, p.category) for p in pairs), shares, seed)
    kept = [p for p in pairs if p.id in keep_ids]
    dropped = [p for p in pairs if p.id not in keep_ids]
    return kept, dropped


def mix_ids(pairs: Iterable[tuple[str, str]], shares: dict[str, float] | None, seed: int = 0
            ) -> set[str] | _All:
    """The ids `mix` keeps, from (pair id, category) rows (see `mix`); everything when `shares`
    is None."""
    if not shares:
        return _All()
    total = sum(shares.values())
    norm = {c: s / total for c, s in shares.items() if s > 0}
    by_cat: dict[str, list[str]] = defaultdict(list)
    for pid, cat in pairs:
        by_cat[cat].append(pid)
    n = min(len(by_cat.get(c, [])) / s for c, s in norm.items())
    keep: set[str] = set()
    for c, s in norm.items():
        k = min(len(by_cat.get(c, [])), int(round(n * s)))
        keep.update(sorted(by_cat.get(c, []), key=lambda i: _rank(i, seed))[:k])
    return keep


class _All:
    """Contains every id (the mix with no target shares)."""

    def __contains__(self, item: object) -> bool:
        return True


def _rank(pair_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{pair_id}".encode()).hexdigest()
