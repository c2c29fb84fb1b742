"""PII redaction on written and spoken-style utterances."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from duplexalign.judges.redact import redact, redact_tokens

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("text,out,kind", [
    ("write to jo.doe+x@mail.example.org now", "write to [EMAIL] now", "email"),
    ("it's john dot smith at gmail dot com", "it's [EMAIL]", "email"),
    ("call 555-123-4567 please", "call [PHONE] please", "phone"),
    ("call +44 20 7946 0958", "call [PHONE]", "phone"),
    ("my number is five five five one two three four five six seven",
     "my number is [PHONE]", "phone"),
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok", "card"),          # Luhn-valid
    ("I live at 221B Baker Street, London", "I live at [ADDRESS], London", "address"),
    ("send it to twelve oak avenue", "send it to [ADDRESS]", "address"),
])
def test_pii_is_replaced_and_counted(text, out, kind):
    red, counts = redact(text)
    assert red == out and counts == {kind: 1}


@pytest.mark.parametrize("text", [
    "the year 1999 was good", "it takes 3.5 seconds", "two plus two is four",
    "meet me at noon", "I walked down the street",
])
def test_ordinary_text_is_untouched(text):
    assert redact(text) == (text, {})


@pytest.mark.parametrize("text,out,counts", [
    ("my name is john smith", "my name is [NAME]", {"name": 1}),
    ("please ask mrs garcia to call", "please ask mrs [NAME] to call", {"name": 1}),
    ("i was born on the third of may nineteen eighty five", "i was born on [DOB]", {"dob": 1}),
    ("my date of birth is 12/03/1985", "my date of birth is [DOB]", {"dob": 1}),
    ("my iban is GB82 WEST 1234 5698 7654 32 thanks", "my iban is [ACCOUNT] thanks",
     {"account": 1}),
    ("the sort code is twenty forty sixty", "the sort code is [ACCOUNT]", {"account": 1}),
    # digits spoken across fillers and pauses are one number
    ("it's five five five, uh, one two three, um, four five six seven", "it's [PHONE]",
     {"phone": 1}),
    ("I am David and my wife is called Emma", "I am [NAME] and my wife is called [NAME]",
     {"name": 2}),
])
def test_names_birth_dates_accounts_and_paused_numbers(text, out, counts):
    assert redact(text) == (out, counts)


@pytest.mark.parametrize("text", [
    "chapter 12 of the old court records",  # was "chapter [ADDRESS] records"
    "room 12 on the main road", "it happened between 1914 and 1918", "i was born in london",
    "the meeting is on the 3rd of may", "call me tomorrow", "I am tired", "what is an iban",
    "the population is 1,234,567 people", "my name is on the list",
])
def test_look_alikes_are_untouched(text):
    assert redact(text) == (text, {})


def test_a_number_split_over_two_segments_is_one_hit():
    """Each half has too few digits; the channel is redacted as one text."""
    tokens = "my number is five five five".split() + "one two three four".split()
    out, counts = redact_tokens(tokens)
    assert counts == {"phone": 1}
    assert out == ["my", "number", "is", "[PHONE]", "", "", "", "", "", ""]
    out, counts = redact_tokens(["call", "555-123-4567,", "thanks"])
    assert out == ["call", "[PHONE],", "thanks"] and counts == {"phone": 1}


def test_labelled_set_precision_and_recall():
    """The >= 200 labelled sentences (bench/pii.py prints the per-kind table)."""
    data = yaml.safe_load((DATA / "pii_sentences.yaml").read_text())
    rows = data["sentences"]
    assert len(rows) + len(data["heldout"]) >= 200 and sum(not r["pii"] for r in rows) >= 100
    tp = pred = gold = touched = 0
    for row in rows + data["heldout"]:
        _, found = redact(row["text"])
        want = Counter(row["pii"])
        tp += sum(min(found[k], want[k]) for k in want)
        pred += sum(found.values())
        gold += sum(want.values())
        touched += bool(found) and not want
    assert tp / pred >= 0.95 and tp / gold >= 0.9 and touched <= 2, (tp, pred, gold, touched)
