"""PII redaction on written and spoken-style utterances."""

from __future__ import annotations

import pytest

from duplexalign.judges.redact import redact


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
