"""The fitted SentencePiece tokenizer reserves Moshi's PAD (3) and EPAD (0) ids."""

from __future__ import annotations

from duplexalign.streams.tokenizer import TextTokenizer, fit_tokenizer

TEXTS = ["hello there how are you doing today", "the weather is nice and sunny today",
         "what is the capital of france", "paris is the capital of france"] * 20


def test_fit_reserves_ids_and_round_trips(tmp_path):
    path = fit_tokenizer(TEXTS, tmp_path / "tok.model", vocab_size=80)
    tok = TextTokenizer(path)
    assert tok.sp.id_to_piece(0) == "<epad>"
    assert tok.sp.pad_id() == 3
    seen = set()
    for sentence in TEXTS[:4] + ["zebra quokka !"]:
        for word in sentence.split():
            ids = tok.encode_word(word)
            assert ids and 0 not in ids and 3 not in ids
            seen.update(ids)
    assert tok.decode(tok.encode_word("capital") + [3, 0, 3]) == "capital"
    assert max(seen) < tok.vocab_size
