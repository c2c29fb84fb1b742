"""Validation of ingested data: every problem a log can have, each with a stable reason key.

Owns the reason vocabulary of the ingest stage (`REASONS`) and the checks behind it: parsing raw
times and words (`make_word`, raising `BadInput` before a malformed `Word` can exist), reading JSON
transcript files safely (`read_json`), and checking a parsed `Conversation` as a whole
(`check_conversation`: order, overlaps, words past the audio's end, empty channels, absurd sizes,
encodings). It knows nothing about audio decoding or where quarantined items go (see `stage.py`).
"""

from __future__ import annotations

import json
import math
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from duplexalign.errors import BadInput
from duplexalign.ingest.base import IngestConfig
from duplexalign.records import CHANNELS, Conversation, Word

REASONS: dict[str, str] = {
    "input_missing": "the input path does not exist or holds nothing the reader knows",
    "input_unreadable": "an input file cannot be read to its end (truncated or corrupt compression)",
    "bad_json": "a transcript file or line is not valid JSON",
    "bad_encoding": "text is not valid UTF-8 (or holds unpaired surrogates)",
    "bad_schema": "a required key is missing or has the wrong type",
    "file_too_large": "a transcript file or line is larger than max_file_bytes",
    "alignment_missing": "the transcript file that belongs to an audio file is missing",
    "unknown_speaker": "a speaker label is not in speaker_map and default_channel is null",
    "unknown_channel": "a words key is neither \"model\" nor \"user\"",
    "path_outside_input": "a path named by the input (or a symlink) resolves outside the input "
                          "folder (see ingest.allow_outside_paths)",
    "special_file": "a path names a special file (/dev, /proc, /sys, a FIFO, socket or device)",
    "symlinked_folder": "a symlinked folder inside the input, not followed (its target is "
                        "inside the input or allowed: copy or move it in)",
    "time_nan": "a word time is NaN or infinite",
    "time_negative": "a word starts before 0 s",
    "time_reversed": "a word ends before it starts",
    "word_empty": "a word's text is empty",
    "word_too_long": "a single word lasts longer than max_word_duration",
    "words_unsorted": "a channel's words are not sorted by start time",
    "words_overlap": "two words of one channel overlap by more than overlap_tolerance",
    "words_past_end": "a word ends after the audio (or declared duration) by more than end_tolerance",
    "empty_channel_model": "the model channel has no words (see require_channels)",
    "empty_channel_user": "the user channel has no words (see require_channels)",
    "bad_duration": "the duration is missing, zero, negative or not a number",
    "too_long": "the conversation is longer than max_duration",
    "too_many_words": "the conversation has more than max_words words",
    "audio_missing": "an audio file named by the input does not exist",
    "audio_unreadable": "an audio file cannot be decoded",
    "audio_mono": "a stereo file (model + user) was expected but the file has one channel",
    "audio_empty": "an audio file holds no samples",
    "audio_format": "a run's channel wav is not mono 24 kHz or does not match the duration",
    "asr_failed": "speech recognition failed on the conversation's audio",
    "duplicate_id": "another conversation of the same run already has this id",
    "bad_path": "a path in the input has a NUL byte or a character the file system cannot encode",
    "reader_error": "the reader failed on this item in an unexpected way (bug report welcome)",
}
"""Every quarantine reason of the ingest stage and what it means (stats.json counts each)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a conversation: a key of `REASONS` and a human-readable detail."""

    reason: str
    detail: str


def parse_time(value: Any, what: str, where: str = "") -> float:
    """A time in seconds from raw JSON; raises BadInput("bad_schema" | "time_nan").

    Args:
        value: the raw value.
        what: its name, for the detail text (e.g. "start").
        where: position of its item in the input, prefixed to `what` in the detail text.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        t = float(value)
    else:
        raise BadInput("bad_schema", f"{where} {what}".strip() + f" must be a number, "
                                                                 f"got {value!r:.40}")
    if not math.isfinite(t):
        raise BadInput("time_nan", f"{where} {what}".strip() + f" is {t}")
    return t


def make_word(text: Any, start: Any, end: Any, where: str = "word") -> Word:
    """Build a `Word` from raw values, raising BadInput with the reason key of the first problem.

    Args:
        text: the word's text (leading/trailing spaces are stripped).
        start: start time in seconds.
        end: end time in seconds.
        where: position of the word in the input, used in the detail text.
    """
    if not isinstance(text, str):
        raise BadInput("bad_schema", f"{where}: text must be a string, got {text!r:.40}")
    s = parse_time(start, "start", where)
    e = parse_time(end, "end", where)
    if s < 0:
        raise BadInput("time_negative", f"{where} starts at {s}")
    if e < s:
        raise BadInput("time_reversed", f"{where} ends at {e} before its start {s}")
    return Word(text=text.strip(), start=s, end=e)


_WORDS = TypeAdapter(list[Word])


def make_words(rows: Iterable[tuple[Any, Any, Any]], where: Callable[[int], str]) -> list[Word]:
    """`make_word` for many (text, start, end) rows at once (ingest's hot loop: the checks run in
    Python, the records are built in one pydantic call).

    Args:
        rows: raw (text, start, end) values.
        where: position of row i in the input, for the detail text of an error.

    Raises:
        BadInput: the reason of the first bad row.
    """
    out = []
    for i, (text, start, end) in enumerate(rows):
        if (type(text) is not str or type(start) not in (int, float)
                or type(end) not in (int, float) or not 0 <= start <= end < math.inf):
            make_word(text, start, end, where(i))  # slow path: raises with the precise reason
        out.append({"text": text.strip(), "start": start, "end": end})
    return _WORDS.validate_python(out)


def read_json(path: Path, cfg: IngestConfig, missing_reason: str = "alignment_missing") -> Any:
    """Parse a JSON file defensively.

    Raises:
        BadInput: `missing_reason` if absent, "special_file", "file_too_large", "bad_encoding"
            or "bad_json".
    """
    try:
        st = path.stat()
    except OSError:
        raise BadInput(missing_reason, f"{path} does not exist") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise BadInput("special_file", f"{path} is not a regular file (FIFO, socket or device)")
    size = st.st_size
    if size > cfg.max_file_bytes:
        raise BadInput("file_too_large", f"{path} has {size} bytes (> max_file_bytes)")
    try:
        return parse_json_bytes(path.read_bytes(), str(path))
    except OSError as e:
        raise BadInput(missing_reason, f"{path}: {e}") from None


def parse_json_bytes(raw: bytes, where: str) -> Any:
    """Decode UTF-8 `raw` (a leading BOM is allowed) and parse it as JSON; raises
    BadInput("bad_encoding" | "bad_json")."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput("bad_encoding", f"{where}: {e}") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise BadInput("bad_json", f"{where}: {str(e)[:200]}") from None


def check_conversation(conv: Conversation, cfg: IngestConfig,
                       audio_duration: float | None = None) -> list[Problem]:
    """Every problem of a parsed conversation, most fundamental first ([] when it is clean).

    Args:
        conv: the conversation (words already parsed, so times are finite and ordered per word).
        cfg: the ingest options holding the thresholds.
        audio_duration: length of its audio in seconds, if loaded; else `conv.duration` is the end.
    """
    probs: list[Problem] = []
    n_words = len(conv.words.model) + len(conv.words.user)
    if n_words > cfg.max_words:
        return [Problem("too_many_words", f"{n_words} words > max_words={cfg.max_words}")]
    end = audio_duration if audio_duration is not None else conv.duration
    if end > cfg.max_duration:
        return [Problem("too_long", f"{end:.1f} s > max_duration={cfg.max_duration}")]
    if not conv.id.strip():
        probs.append(Problem("bad_schema", "empty conversation id"))
    for ch in CHANNELS:
        words = conv.words.of(ch)
        if not words and ch in cfg.require_channels:
            probs.append(Problem(f"empty_channel_{ch}", f"no {ch} words"))
        probs.extend(_check_channel(words, ch, cfg, end))
    try:  # unpaired surrogates (from JSON escapes) cannot be written as UTF-8
        conv.id.encode("utf-8")
        for ch in CHANNELS:
            "".join(w.text for w in conv.words.of(ch)).encode("utf-8")
        if conv.meta:
            json.dumps(conv.meta, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        probs.append(Problem("bad_encoding", f"text cannot be written as UTF-8 ({e.reason})"))
    return probs


def _check_channel(words: list[Word], ch: str, cfg: IngestConfig, end: float) -> list[Problem]:
    probs: list[Problem] = []
    found: set[str] = set()  # report each reason once per channel

    def add(reason: str, detail: str) -> None:
        if reason not in found:
            found.add(reason)
            probs.append(Problem(reason, f"{ch}: {detail}"))

    for i, w in enumerate(words):
        if not w.text:
            add("word_empty", f"word {i} has empty text")
        if w.end - w.start > cfg.max_word_duration:
            add("word_too_long", f"word {i} {w.text!r:.30} lasts {w.end - w.start:.1f} s")
        if w.end > end + cfg.end_tolerance:
            add("words_past_end", f"word {i} ends at {w.end:.2f} s, audio ends at {end:.2f} s")
        if i:
            prev = words[i - 1]
            if w.start < prev.start:
                add("words_unsorted", f"word {i} starts at {w.start} before word {i - 1}")
            elif w.start < prev.end - cfg.overlap_tolerance:
                add("words_overlap", f"word {i} starts at {w.start}, word {i - 1} ends {prev.end}")
    return probs
