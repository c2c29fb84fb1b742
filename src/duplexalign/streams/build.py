"""Token tensors of a conversation and of a pair's two variants (the 1 + 2K row layout).

Owns assembling rows: the conversation's logged tensor `codes [1 + 2K, T]` (text from the logged model
words, model and user codes), and a variant's window rows `[1 + K, W]` (text + model audio). A variant's
text row is built over `[0, we)` from the logged model words that start before the window plus the
variant's words, then cut to the window, so words of the shared context that run into the window are
placed identically in both variants and the context frames are those of the logged tensor. It also
owns the per-frame floor labels (`floor_labels`): the frames where the user holds the floor (speaking,
or in a mid-turn pause shorter than the turn gap) while the model is silent, which the trainer's
"user holds the floor" anchor reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from duplexalign.records import Word
from duplexalign.segments import to_segments
from duplexalign.streams.layout import Layout
from duplexalign.streams.text import TextStream, Tokenize, build_text_stream
from duplexalign.timebase import num_frames, seconds_to_frame

DEFAULT_FLOOR_GAP = 1.0
"""User silence (s) that ends the user's turn; shorter gaps are mid-turn pauses in which the user
still holds the floor (the same value as the timing rules' `turn_end_silence`)."""


def speaking_frames(words: Sequence[Word], t: int) -> np.ndarray:
    """`[t]` bool: frames that overlap one of `words` (`[start, end)` in seconds)."""
    out = np.zeros(t, dtype=bool)
    for w in words:
        out[seconds_to_frame(w.start):num_frames(w.end)] = True
    return out


def floor_labels(user_words: Sequence[Word], model_words: Sequence[Word], t: int,
                 gap: float = DEFAULT_FLOOR_GAP) -> np.ndarray:
    """`[t]` bool: the user holds the floor and the model is silent.

    The user holds the floor from the first to the last word of each of their turns (words closer
    than `gap` s form one turn, so a held "um" pause is inside it); backchannels ("mm hm", and any
    short token, by the timing rules' `is_backchannel`) do not claim the floor. Frames overlapping a model word are excluded.
    """
    from duplexalign.judges.rules import TimingRulesConfig, is_backchannel

    rules = TimingRulesConfig()
    user = np.zeros(t, dtype=bool)
    for seg in to_segments(sorted(user_words, key=lambda w: w.start), "user", gap):
        if not is_backchannel(seg, rules):
            user[seconds_to_frame(seg.start):num_frames(seg.end)] = True
    return user & ~speaking_frames(model_words, t)


def conversation_codes(model_words: Sequence[Word], model_codes: np.ndarray,
                       user_codes: np.ndarray, tokenize: Tokenize) -> tuple[np.ndarray, TextStream]:
    """The logged tensor `[1 + 2K, T]` int64 from `model_codes`/`user_codes` `[K, T]` and words."""
    k, t = model_codes.shape
    if user_codes.shape != (k, t):
        raise ValueError(f"model codes {model_codes.shape} and user codes {user_codes.shape} differ")
    text = build_text_stream(model_words, tokenize, t)
    lay = Layout(k)
    out = np.empty((lay.num_rows, t), dtype=np.int64)
    out[lay.text_row] = text.tokens
    out[lay.model_rows] = model_codes
    out[lay.user_rows] = user_codes
    return out, text


def variant_text(logged_words: Sequence[Word], variant_words: Sequence[Word], ws: int, we: int,
                 tokenize: Tokenize) -> tuple[np.ndarray, TextStream]:
    """Text row `[we - ws]` of a variant: context words before frame `ws` + the variant's words."""
    context = [w for w in logged_words if seconds_to_frame(w.start) < ws]
    words = sorted([*context, *variant_words], key=lambda w: w.start)
    s = build_text_stream(words, tokenize, we)
    return s.tokens[ws:we], s


def variant_rows(text: np.ndarray, model_codes: np.ndarray) -> np.ndarray:
    """Stack a window's text `[W]` and model codes `[K, W]` into `[1 + K, W]` int64."""
    if model_codes.shape[1] != text.shape[0]:
        raise ValueError(f"text has {text.shape[0]} frames, codes {model_codes.shape[1]}")
    return np.concatenate([text[None, :], model_codes], axis=0).astype(np.int64)
