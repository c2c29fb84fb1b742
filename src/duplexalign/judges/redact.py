"""PII redaction of utterance text before it is sent to any LLM endpoint.

Owns what counts as personal data in what a user said and how it is replaced: e-mail addresses, phone
and payment card numbers, bank accounts (IBANs checked with python-stdnum, and any account, sort or
routing number after its cue words), dates of birth (after a birth cue), people's names (after an
introduction cue such as "my name is", after a title, or a known first name followed by a surname),
and street addresses, in written form ("jo@x.com", "555-123-4567") and in the spoken form ASR produces
("jo at x dot com", "five five five uh one two three four"). Digits spoken across a pause or a filler
word ("um", "...") still form one number. Each hit becomes a typed placeholder (`[EMAIL]`, `[PHONE]`,
`[CARD]`, `[ACCOUNT]`, `[DOB]`, `[NAME]`, `[ADDRESS]`) and is counted. Detection runs on the original
text and keeps the first of overlapping hits in a fixed priority order. `redact_tokens` redacts a
whole channel's words at once (so a number split over two segments is one hit) and maps the
placeholders back onto the words. Do not run it over a formatted transcript (timestamps look like
numbers). Precision and recall: bench/pii.py on tests/judges/data/pii_sentences.yaml.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

_DATA = Path(__file__).resolve().parent / "data"

_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_UNITS = f"{_DIGIT_WORDS}|{_TEENS}"
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_NUM_WORDS = f"{_UNITS}|{_TENS}|hundred|double|triple"
_DIGIT_OF = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine".split())} | {"oh": "0"}
_FILLERS = frozenset({"uh", "um", "umm", "er", "erm", "ah", "hmm", "mm", "...", "…", "-", "—",
                      "–"})
_SUFFIX = (r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
           r"terrace|parkway|pkwy|highway|hwy|square|sq|crescent|close)")
_NOT_STREET = (r"(?:of|the|a|an|in|on|at|to|for|with|by|from|and|or|is|was|my|your|our|their|his|"
               r"her|its|this|that|these|those|about|into|over|under)")
_NOT_HOUSE = (r"(?:chapter|chapters|page|pages|section|verse|room|line|part|volume|level|grade|"
              r"episode|season|track|act|scene|article|rule|step|item|question|exercise|table|figure|"
              r"year|years|week|weeks|day|days|hour|hours|minute|minutes|floor|gate|platform|bus|"
              r"route|no|number|over|under|about|around|after|before|than)")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_ORDINALS = ("first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
             "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|"
             "thirtieth|\\d{1,2}(?:st|nd|rd|th)")
_DATE_TOKEN = (rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|{_MONTHS}|{_ORDINALS}|{_UNITS}|{_TENS}|"
               rf"hundred|thousand|and|of|the|\d{{1,4}})\b")
_RELATIONS = ("wife|husband|son|daughter|mother|mom|mum|father|dad|brother|sister|friend|boss|"
              "doctor|partner|colleague|neighbour|neighbor|girlfriend|boyfriend|grandmother|"
              "grandfather|grandma|grandpa|aunt|uncle|cousin|manager|teacher")
_STOP = frozenset(
    "a an the and or but so of to in on at for with by from is are was were be been am i me my we "
    "you your he she it they them his her its our their this that these those not no yes okay ok "
    "just really very here there now then today tomorrow yesterday please thanks thank hi hello hey "
    "what when where why how who which sorry fine good great well sure right also still too back "
    "home later soon again going gonna want need like love hate think know tired happy sad busy "
    "ready done sure calling speaking talking trying looking wondering asking".split())

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+)*\s+at\s+[a-z0-9-]+"
    r"(?:\s+dot\s+[a-z0-9-]+)*\s+dot\s+(?:com|org|net|edu|gov|io|co|uk|de|fr)\b", re.I)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.I)
ACCOUNT_CUE = re.compile(
    r"\b(?:iban|account\s+(?:number|no\.?)|acct\.?(?:\s+no\.?)?|sort\s+code|routing\s+number|"
    r"bank\s+account)(?:\s+(?:is|was|number|it's|its|reads))*[\s:,]+", re.I)
DOB_CUE = re.compile(
    r"\b(?:born(?:\s+on|\s+in)?|date\s+of\s+birth(?:\s+is)?|birth\s*date(?:\s+is)?|d\.?\s?o\.?\s?b\.?"
    r"(?:\s+is)?|birthday(?:\s+is)?(?:\s+on)?)[\s:,]+", re.I)
DATE_RUN = re.compile(rf"{_DATE_TOKEN}(?:[\s,]+{_DATE_TOKEN}){{0,9}}", re.I)
NAME_CUE = re.compile(
    rf"\b(?:name\s+is|my\s+name's|name's|holder\s+is|i'm\s+called|i\s+am\s+called|call\s+me|"
    rf"this\s+is|it's|i\s+am|i'm|my\s+(?:{_RELATIONS})(?:'s\s+name\s+is|\s+is\s+called|"
    rf"\s+is\s+named|\s+named|\s+called|,)?)\s+", re.I)
TITLE = re.compile(r"\b(?:mr|mrs|ms|miss|dr|doctor|professor)\.?\s+", re.I)
"""A title: the next word is a surname even in lower-case ASR text ("mrs garcia")."""
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
DIGIT_RUN = re.compile(r"(?<![\w.,])\+?\d(?:[\s().-]{0,2}\d){6,18}(?![\w])")
ADDRESS = re.compile(
    rf"\b(?:\d{{1,5}}[a-z]?|(?:(?:{_NUM_WORDS})[\s-]+){{1,4}})\s*"
    rf"(?:(?!{_NOT_STREET}\b)[A-Za-z][a-z]+\s+){{1,3}}{_SUFFIX}\b", re.I)
_TOKEN = re.compile(r"\S+")

Span = tuple[int, int, str]  # start, end (characters of the text), kind


@functools.cache
def first_names() -> frozenset[str]:
    """Common first names (lower case), shipped in judges/data/first_names.txt."""
    text = (_DATA / "first_names.txt").read_text(encoding="utf-8")
    return frozenset(w.strip().lower() for w in text.split() if w.strip() and not w.startswith("#"))


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _number_kind(digits: str) -> str:
    return "card" if 13 <= len(digits) <= 19 and _luhn(digits) else "phone"


def _iban(text: str) -> Iterator[Span]:
    from stdnum import iban

    for m in IBAN.finditer(text):
        parts = m.group(0).split(" ")
        for k in range(len(parts), 0, -1):  # the longest valid prefix ("... 00 please")
            cand = " ".join(parts[:k])
            if iban.is_valid(cand):
                yield m.start(), m.start() + len(cand), "account"
                break


def _after_cue(cue: re.Pattern, text: str, take: Callable[[str, int], int | None], kind: str
               ) -> Iterator[Span]:
    for m in cue.finditer(text):
        end = take(text, m.end())
        if end is not None and end > m.end():
            yield m.end(), end, kind


def _account_run(text: str, pos: int) -> int | None:
    """End of an account number starting at `pos`: letters, digits and number words, >= 4 digits."""
    digits, end = 0, None
    for m in _TOKEN.finditer(text, pos):
        tok = m.group(0).strip(",.;:!?").lower()
        if re.fullmatch(r"[a-z]?\d[\d-]*[a-z]?|[a-z]{1,2}\d*|[a-z]{4}", tok) and tok not in _STOP:
            digits += sum(c.isdigit() for c in tok)
        elif tok in _DIGIT_OF or re.fullmatch(_NUM_WORDS, tok):
            digits += 1 if tok in _DIGIT_OF else 2
        elif tok in _FILLERS:
            continue
        else:
            break
        end = m.start() + len(m.group(0).rstrip(",.;:!?"))
    return end if digits >= 4 else None


def _date_run(text: str, pos: int) -> int | None:
    m = DATE_RUN.match(text, pos)
    if not m:
        return None
    words = re.findall(r"[a-z]+|\d+", m.group(0).lower())
    while words and words[-1] in ("and", "of", "the"):
        words.pop()
    has_year_or_month = any(re.fullmatch(_MONTHS, w) or (w.isdigit() and len(w) == 4) or
                            w in ("nineteen", "thousand") or "/" in m.group(0) for w in words)
    if not has_year_or_month:
        return None
    text_end = m.end()
    while text[:text_end].rstrip().lower().endswith((" and", " of", " the")):
        text_end = text[:text_end].rstrip().rfind(" ")
    return text_end


def _name_run(text: str, pos: int, titled: bool = False) -> int | None:
    """End of a name right after an introduction cue: a capitalised word or a known first name,
    then optionally a surname (another capitalised word, or any word after a known first name)."""
    names, end, count, first_known = first_names(), None, 0, False
    for m in WORD.finditer(text, pos):
        if m.start() != pos and text[pos:m.start()].strip():
            break  # punctuation or digits in between
        w = m.group(0)
        low = w.lower()
        known = low in names
        if low in _STOP or (not known and not w[0].isupper() and not (count and first_known)
                            and not (titled and count == 0)):
            break
        first_known = known if count == 0 else first_known
        if count == 0 and not known and w.isupper():
            break  # "I'm OK"
        end, count, pos = m.end(), count + 1, m.end()
        if count == 2:
            break
    return end


def _names_without_cue(text: str) -> Iterator[Span]:
    """A capitalised known first name followed by a capitalised surname ("Maria Lopez")."""
    names = first_names()
    for m in re.finditer(r"\b([A-Z][a-z]+)\s+([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b", text):
        if m.group(1).lower() in names and m.group(2).lower() not in _STOP:
            yield m.start(), m.end(), "name"


def _spoken_numbers(text: str) -> Iterator[Span]:
    """Runs of >= 7 spoken or written digits, across fillers and pauses ("five five five, uh, ...").
    """
    toks = list(_TOKEN.finditer(text))
    i = 0
    while i < len(toks):
        start = end = None
        digits = ""
        j, gap = i, 0
        while j < len(toks):
            raw = toks[j].group(0)
            tok = raw.lower().strip(",.;:!?\"'()")
            if tok in _DIGIT_OF:
                rep = {"double": 2, "triple": 3}.get(
                    toks[j - 1].group(0).lower().strip(",.") if j > i else "", 1)
                digits += _DIGIT_OF[tok] * rep
            elif re.fullmatch(rf"(?:{_TENS}|{_TEENS})", tok):
                digits += "00"  # "twenty", "fifteen": two digits
            elif tok in ("double", "triple", "hundred"):
                digits += "0" if tok == "hundred" else ""
            elif re.fullmatch(r"\+?\d[\d().-]*", tok) and "," not in raw.strip(",."):
                digits += re.sub(r"\D", "", tok)
            elif (tok in _FILLERS or not tok) and start is not None and gap < 2:
                gap += 1
                j += 1
                continue
            else:
                break
            gap = 0
            start = toks[j].start() if start is None else start
            end = toks[j].start() + len(raw.rstrip(",.;:!?\"')"))
            j += 1
        if start is not None and len(digits) >= 7:
            kind = _number_kind(digits)
            yield start, end, kind
            i = j
        else:
            i += 1


def _address(text: str) -> Iterator[Span]:
    """Street addresses, unless the number belongs to a word such as "chapter" or "room"."""
    for m in ADDRESS.finditer(text):
        before = re.search(r"([A-Za-z]+)\W*$", text[:m.start()])
        if before and re.fullmatch(_NOT_HOUSE, before.group(1).lower()):
            continue
        yield m.start(), m.start() + len(m.group(0).rstrip()), "address"


def _regex(pattern: re.Pattern, kind: str | Callable[[re.Match], str]) -> Callable[[str],
                                                                                    Iterator[Span]]:
    def find(text: str) -> Iterator[Span]:
        for m in pattern.finditer(text):
            yield m.start(), m.start() + len(m.group(0).rstrip()), (
                kind(m) if callable(kind) else kind)
    return find


DETECTORS: list[Callable[[str], Iterator[Span]]] = [
    _regex(EMAIL, "email"),
    _regex(SPOKEN_EMAIL, "email"),
    _iban,
    lambda text: _after_cue(ACCOUNT_CUE, text, _account_run, "account"),
    lambda text: _after_cue(DOB_CUE, text, _date_run, "dob"),
    _address,
    _regex(DIGIT_RUN, lambda m: _number_kind(re.sub(r"\D", "", m.group(0)))),
    _spoken_numbers,
    lambda text: _after_cue(NAME_CUE, text, _name_run, "name"),
    lambda text: _after_cue(TITLE, text, lambda t, p: _name_run(t, p, titled=True), "name"),
    _names_without_cue,
]
"""Detectors in priority order: of two overlapping hits the earlier detector's wins."""


def find_pii(text: str) -> list[Span]:
    """Non-overlapping PII spans of `text` as (start, end, kind), in text order."""
    chosen: list[Span] = []
    for detect in DETECTORS:
        for a, b, kind in detect(text):
            if b > a and all(b <= s or a >= e for s, e, _ in chosen):
                chosen.append((a, b, kind))
    return sorted(chosen)


def redact(text: str) -> tuple[str, Counter]:
    """Replace PII in one utterance by placeholders.

    Args:
        text: the utterance (written or ASR-style spoken text).

    Returns:
        The redacted text and a Counter of redactions by kind ("email", "phone", "card", "account",
        "dob", "name", "address").
    """
    spans = find_pii(text)
    out, pos = [], 0
    for a, b, kind in spans:
        out += [text[pos:a], f"[{kind.upper()}]"]
        pos = b
    out.append(text[pos:])
    return "".join(out), Counter(kind for _, _, kind in spans)


def redact_tokens(tokens: Sequence[str]) -> tuple[list[str], Counter]:
    """Redact a sequence of words as one text (a channel's words: PII split by a pause is one hit).

    Returns:
        One string per input token: unchanged, the placeholder (on the first token of a hit, with
        the characters of that token outside the hit), or the leftover characters of a later token
        of the hit ("" when it lies wholly inside), and the Counter of redactions by kind.
    """
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + 1
    text = " ".join(tokens)
    spans = find_pii(text)
    out = list(tokens)
    for a, b, kind in spans:
        first = True
        for k, (s, t) in enumerate(zip(starts, tokens, strict=True)):
            e = s + len(t)
            if e <= a or s >= b:
                continue
            head = t[:max(0, a - s)] if first else ""
            tail = t[max(0, b - s):] if e > b else ""
            out[k] = f"{head}[{kind.upper()}]{tail}" if first else tail
            first = False
    return out, Counter(kind for _, _, kind in spans)
