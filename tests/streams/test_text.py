"""Hand-built expected text streams: EPAD placement, adjacent words, collisions, span edges."""

from __future__ import annotations

import numpy as np
import pytest
from factories import word

from duplexalign.streams.text import build_text_stream


# A toy tokenizer: each word is its letters, a=10, b=11, ... (so "ab" -> [10, 11]).
def toy(word: str) -> list[int]:
    return [10 + ord(c) - ord("a") for c in word]


W = word


P, E = 3, 0  # PAD, EPAD


def test_single_word_epad_before_first_token():
    # "ab" starts at 0.25 s -> frame 3 (0.25 * 12.5 = 3.125): EPAD at 2, tokens at 3, 4.
    s = build_text_stream([W("ab", 0.25)], toy, num_frames=7)
    assert s.tokens.tolist() == [P, P, E, 10, 11, P, P]
    assert s.word_frames == [3]


def test_word_at_frame_zero_has_no_epad():
    s = build_text_stream([W("a", 0.0)], toy, num_frames=3)
    assert s.tokens.tolist() == [10, P, P]


def test_two_separate_words_each_get_epad():
    # "a" at frame 1, "b" at frame 4: EPAD at 0 and at 3.
    s = build_text_stream([W("a", 0.08), W("b", 0.32)], toy, num_frames=6)
    assert s.tokens.tolist() == [E, 10, P, E, 11, P]


def test_adjacent_words_have_no_epad_between():
    # "ab" at frame 1 (tokens 1, 2), "c" at frame 3: directly after, no EPAD between.
    s = build_text_stream([W("ab", 0.08), W("c", 0.24)], toy, num_frames=5)
    assert s.tokens.tolist() == [E, 10, 11, 12, P]
    assert s.shifted_words == 0


def test_colliding_word_is_shifted_not_dropped():
    # "abcd" at frame 1 needs frames 1-4; "e" starts at frame 2 -> shifted to frame 5,
    # "f" at frame 3 -> shifted to 6. moshi-finetune would have dropped "bcd".
    s = build_text_stream([W("abcd", 0.08), W("e", 0.16), W("f", 0.24)], toy, num_frames=9)
    assert s.tokens.tolist() == [E, 10, 11, 12, 13, 14, 15, P, P]
    assert s.word_frames == [1, 5, 6]
    assert s.shifted_words == 2
    assert s.shifted_frames == (5 - 2) + (6 - 3)
    assert s.cut_tokens == 0


def test_words_past_the_span_and_cut_tokens():
    # "abc" at frame 3 of a 5-frame span: only "ab" fits; "d" starts at frame 6 (past the end).
    s = build_text_stream([W("abc", 0.24), W("d", 0.48)], toy, num_frames=5)
    assert s.tokens.tolist() == [P, P, E, 10, 11]
    assert s.cut_tokens == 1
    assert s.words_past_end == 1


def test_span_offset_and_words_before_span():
    # Span = absolute frames [10, 14). "a" at frame 5 is before the span; "b" at frame 11.
    s = build_text_stream([W("a", 0.40), W("b", 0.88)], toy, num_frames=4, start_frame=10)
    assert s.tokens.tolist() == [E, 11, P, P]
    assert s.words_before_start == 1


def test_shift_that_runs_past_the_end_is_counted():
    s = build_text_stream([W("abc", 0.0), W("de", 0.08)], toy, num_frames=4)
    assert s.tokens.tolist() == [10, 11, 12, 13]
    assert s.cut_tokens == 1


def test_reserved_ids_are_rejected():
    with pytest.raises(ValueError, match="reserved"):
        build_text_stream([W("x", 0.0)], lambda w: [3], num_frames=2)


def test_empty_words_give_all_pad():
    s = build_text_stream([], toy, num_frames=4)
    assert np.array_equal(s.tokens, np.full(4, 3))


def test_floor_labels_hold_pause_and_skip_backchannels_and_model_speech():
    from duplexalign.streams.build import floor_labels

    user = [W("what", 0.1, 0.3), W("is", 0.35, 0.5), W("um", 0.5, 0.7),
            W("this", 1.5, 1.8),            # 0.8 s "um" pause < 1.0 s: still the user's turn
            W("mm", 3.0, 3.2), W("hm", 3.2, 3.4),  # a backchannel: does not claim the floor
            W("tell", 4.6, 4.75), W("me", 4.75, 4.85), W("more", 4.85, 4.9)]
    model = [W("ok", 4.7, 4.8)]             # the model talks over the user: not a floor frame
    got = floor_labels(user, model, 64)
    # frames of 80 ms: [0.1, 1.8) -> frames 1..22; [4.6, 4.9) -> 57..61 minus [4.7, 4.8) -> 58, 59
    expect = np.zeros(64, dtype=bool)
    expect[1:23] = True
    expect[[57, 60, 61]] = True
    np.testing.assert_array_equal(got, expect)
    # a 1.2 s pause ends the turn: its frames are not the user's
    words = [W("what", 0.1, 0.2), W("is", 0.2, 0.3), W("it", 0.25, 0.3),
             W("is", 1.5, 1.6), W("it", 1.6, 1.7), W("now", 1.7, 1.8)]
    split = floor_labels(words, [], 30, gap=1.0)
    assert not split[4:18].any() and split[1:4].all() and split[18:23].all()
