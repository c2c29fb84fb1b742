"""Labelled judge cases and prompt-injection attacks shipped with the package (`judges/data/`).

Owns turning a labelled case (speaker turns + the gold problem categories of its last model reply)
into a timed `Conversation`, with or without an injected attack in a user turn. Used by
`bench/judge_quality.py` to measure the content judge, and by tests. It knows nothing about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from duplexalign.records import ChannelWords, Conversation, Source, Word

WORD_S = 0.3
"""Seconds per synthetic word (about 200 words per minute, a brisk speaking rate)."""
TURN_GAP = 1.0
"""Silence between turns in seconds (above the 0.8 s segment gap, so each turn is one segment)."""


@dataclass(frozen=True)
class JudgeCase:
    """A labelled case: `turns` as (speaker, text), gold `labels` of the last model reply."""

    id: str
    turns: list[tuple[str, str]]
    labels: list[str]


@dataclass(frozen=True)
class Attack:
    """A prompt-injection attack spoken by the user inside case `case`."""

    id: str
    case: str
    goal: str
    position: str
    text: str


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((resources.files("duplexalign.judges") / "data" / name).read_text())


def load_cases(name: str = "judge_cases_v1.yaml") -> list[JudgeCase]:
    """The labelled cases of a shipped data file."""
    return [JudgeCase(c["id"], [tuple(t) for t in c["turns"]], list(c["labels"] or []))
            for c in _load(name)["cases"]]


def load_attacks(name: str = "judge_injections_v1.yaml") -> list[Attack]:
    """The prompt-injection attacks of a shipped data file."""
    return [Attack(**a) for a in _load(name)["attacks"]]


def attacked_turns(case: JudgeCase, attack: Attack) -> list[tuple[str, str]]:
    """The case's turns with the attack spoken before (in the last user turn) or after the reply."""
    turns = list(case.turns)
    if attack.position == "after":
        return [*turns, ("user", attack.text)]
    last_user = max(i for i, (who, _) in enumerate(turns) if who == "user")
    turns[last_user] = ("user", f"{turns[last_user][1]} {attack.text}")
    return turns


def to_conversation(cid: str, turns: list[tuple[str, str]]) -> Conversation:
    """A timed conversation with one segment per turn (WORD_S per word, TURN_GAP between turns)."""
    words: dict[str, list[Word]] = {"user": [], "model": []}
    t = 0.0
    for who, text in turns:
        for tok in text.split():
            words[who].append(Word(text=tok, start=round(t, 3), end=round(t + WORD_S * 0.9, 3)))
            t += WORD_S
        t += TURN_GAP
    return Conversation(id=cid, words=ChannelWords(**words), duration=round(t + 1.0, 3),
                        source=Source(reader="judge_cases", path=cid, digest=""))


def graded_reply_index(turns: list[tuple[str, str]]) -> int:
    """1-based index (R1, R2, ...) of the last model reply among the model turns."""
    return sum(1 for who, _ in turns if who == "model")
