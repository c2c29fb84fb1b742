"""The one text normaliser and the one file-safe id helper."""

from __future__ import annotations

import pytest

from duplexalign.text import MAX_NAME, normalize, safe_id


@pytest.mark.parametrize("text,norm", [
    ("Mm-hmm, OK\u2019s!", "mm hmm ok's"),       # hyphen splits, typographic apostrophe kept
    ("  Sorry,   I can't  ", "sorry i can't"),    # punctuation and runs of spaces
    ("Caf\u00e9 no.5_x", "caf\u00e9 no 5 x"),     # letters and digits of any script stay
    ("", ""),
])
def test_normalize(text, norm):
    assert normalize(text) == norm


def test_safe_id_keeps_safe_ids_and_hashes_the_rest():
    assert safe_id("conv-1.a_b") == "conv-1.a_b"
    a, b = safe_id("a/b"), safe_id("a:b")
    assert a.startswith("a_b_") and b.startswith("a_b_") and a != b  # same slug, different hash
    assert safe_id("..") != ".." and safe_id("").startswith("_")
    long = safe_id("x" * 300)
    assert len(long) == MAX_NAME + 7 and long != safe_id("x" * 301)
