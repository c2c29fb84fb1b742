"""The text-stream builder: timed words -> one text token per 12.5 Hz frame (Moshi's inner monologue).

Owns the PAD/EPAD placement rule (moshi.md A3-A4), written for this project. Each word is tokenized on
its own (stripped, no BOS). Its tokens are written one per frame from the frame that contains the word's
start (`timebase.seconds_to_frame`). Every frame without a token is PAD (3), and the frame just before
a word's first token becomes EPAD (0) when that frame would otherwise be padding.

Collision rule (where this differs from moshi-finetune's interleaver): when a word starts while the
previous word's tokens are still being written, moshi-finetune drops the previous word's remaining
tokens. Here nothing is dropped: the later word's tokens are shifted later, to start right after the
previous word's last token (so the two words are adjacent and no EPAD sits between them), and every
following word is shifted as far as needed. A word whose start frame is before the span is ignored (it
belongs to an earlier span), a word starting at or after the span's end is counted as past the span, and
tokens pushed past the end are cut and counted. The builder knows nothing about audio or pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from duplexalign.records import Word
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID
from duplexalign.timebase import seconds_to_frame

Tokenize = Callable[[str], list[int]]
"""A function that turns one word into its token ids (no BOS/EOS)."""


@dataclass(frozen=True)
class TextStream:
    """A built text row and what the builder had to do to make it.

    Attributes:
        tokens: `[T]` int64 text ids, one per frame.
        word_frames: first frame (relative to the span start) of each placed word, in input order.
        shifted_words: words whose tokens started later than their start frame (collisions).
        shifted_frames: total frames of delay added by collisions.
        cut_tokens: tokens that did not fit before the end of the span.
        words_past_end: words that start at or after the end of the span (not placed).
        words_before_start: words that start before the span (not placed).
    """

    tokens: np.ndarray
    word_frames: list[int]
    shifted_words: int = 0
    shifted_frames: int = 0
    cut_tokens: int = 0
    words_past_end: int = 0
    words_before_start: int = 0


def build_text_stream(words: Sequence[Word], tokenize: Tokenize, num_frames: int,
                      start_frame: int = 0) -> TextStream:
    """Build the text row of the frames `[start_frame, start_frame + num_frames)`.

    Args:
        words: timed words (absolute seconds), sorted by start time.
        tokenize: word -> token ids; ids must not be PAD (3) or EPAD (0).
        num_frames: T, the number of frames of the span.
        start_frame: absolute index of the span's first frame.

    Returns:
        A `TextStream` whose `tokens` is `[T]` int64.
    """
    out = np.full(num_frames, TEXT_PAD_ID, dtype=np.int64)
    is_token = np.zeros(num_frames, dtype=bool)
    cursor = 0  # first frame not yet used by a token
    placed: list[int] = []
    shifted = shifted_frames = cut = past = before = 0
    for w in words:
        f = seconds_to_frame(w.start) - start_frame
        if f < 0:
            before += 1
            continue
        if f >= num_frames:
            past += 1
            continue
        ids = tokenize(w.text.strip())
        if not ids:
            continue
        if TEXT_PAD_ID in ids or TEXT_EPAD_ID in ids:
            raise ValueError(f"tokenizer produced a reserved id (PAD 3 / EPAD 0) for {w.text!r}")
        first = max(f, cursor)
        if first > f:
            shifted += 1
            shifted_frames += first - f
        if first >= num_frames:
            cut += len(ids)
            continue
        if first > 0 and not is_token[first - 1]:
            out[first - 1] = TEXT_EPAD_ID
        n = min(len(ids), num_frames - first)
        out[first:first + n] = ids[:n]
        is_token[first:first + n] = True
        cut += len(ids) - n
        cursor = first + n
        placed.append(first)
    return TextStream(out, placed, shifted, shifted_frames, cut, past, before)
