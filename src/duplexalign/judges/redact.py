"""PII redaction of utterance text before it is sent to any LLM endpoint.

Owns the patterns for e-mail addresses, phone numbers, payment card numbers and street addresses, in
both written form ("jo@x.com", "555-123-4567") and the spoken form ASR produces ("jo at x dot com",
"five five five one two three four"). Each hit is replaced by a typed placeholder (`[EMAIL]`, `[PHONE]`,
`[CARD]`, `[ADDRESS]`) and counted, so that stages can report how much was redacted. It works on the
text of single utterances: never run it over a formatted transcript, whose timestamps look like numbers.
"""

from __future__ import annotations

import re
from collections import Counter

_NUM_WORDS = ("zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
              "fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
              "sixty|seventy|eighty|ninety|hundred|double|triple")
_DIGIT_OF = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine".split())} | {"oh": "0"}
_SUFFIX = (r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
           r"terrace|parkway|pkwy|highway|hwy|square|sq|crescent|close)")

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+)*\s+at\s+[a-z0-9-]+"
    r"(?:\s+dot\s+[a-z0-9-]+)*\s+dot\s+(?:com|org|net|edu|gov|io|co|uk|de|fr)\b", re.I)
DIGIT_RUN = re.compile(r"(?<![\w.])\+?\d(?:[\s().-]{0,2}\d){6,18}(?![\w])")
WORD_RUN = re.compile(rf"\b(?:(?:{_NUM_WORDS})(?:[\s,-]+|$)){{7,}}", re.I)
ADDRESS = re.compile(
    rf"\b(?:\d{{1,5}}[a-z]?|(?:(?:{_NUM_WORDS})[\s-]+){{1,4}})\s*(?:[A-Za-z][a-z]+\s+){{1,3}}{_SUFFIX}\b",
    re.I)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _spoken_digits(text: str) -> str:
    out = []
    toks = re.findall(r"[a-z]+", text.lower())
    for i, t in enumerate(toks):
        if t in ("double", "triple"):
            continue
        d = _DIGIT_OF.get(t)
        if d is None:
            out.append("0")  # tens words etc.: still a number word
            continue
        rep = {"double": 2, "triple": 3}.get(toks[i - 1], 1) if i else 1
        out.append(d * rep)
    return "".join(out)


def _number_kind(digits: str) -> str:
    return "CARD" if 13 <= len(digits) <= 19 and _luhn(digits) else "PHONE"


def redact(text: str) -> tuple[str, Counter]:
    """Replace PII in one utterance by placeholders.

    Args:
        text: the utterance (written or ASR-style spoken text).

    Returns:
        The redacted text and a Counter of redactions by kind ("email", "phone", "card", "address").
    """
    counts: Counter = Counter()

    def sub(pattern: re.Pattern, text: str, label) -> str:
        def repl(m: re.Match) -> str:
            kind = label(m) if callable(label) else label
            counts[kind.lower()] += 1
            tail = m.group(0)[len(m.group(0).rstrip()):]
            return f"[{kind}]{tail}"
        return pattern.sub(repl, text)

    text = sub(EMAIL, text, "EMAIL")
    text = sub(SPOKEN_EMAIL, text, "EMAIL")
    text = sub(ADDRESS, text, "ADDRESS")
    text = sub(DIGIT_RUN, text, lambda m: _number_kind(re.sub(r"\D", "", m.group(0))))
    text = sub(WORD_RUN, text, lambda m: _number_kind(_spoken_digits(m.group(0))))
    return text, counts
