"""records: validation of times and categories, JSON round-trip, immutability."""

import pytest
from factories import conversation, word
from pydantic import ValidationError

from duplexalign.records import (
    Conversation,
    Issue,
    JudgeInfo,
    PreferencePair,
    ReplyVariant,
    Source,
    Word,
)


def _conv(**kw):
    base = dict(id="c", duration=2.0, source=Source(reader="jsonl", path="x", digest="d"),
                model=[word("hi", 0.1, 0.3)])
    return conversation(**{**base, **kw})


@pytest.mark.parametrize("start,end", [(-0.1, 1.0), (1.0, 0.5), (float("nan"), 1.0),
                                       (0.0, float("inf"))])
def test_word_rejects_bad_times(start, end):
    with pytest.raises(ValidationError):
        Word(text="x", start=start, end=end)


def test_zero_length_word_is_allowed():
    assert Word(text="x", start=1.0, end=1.0).end == 1.0


@pytest.mark.parametrize("duration", [0.0, -1.0, float("nan")])
def test_conversation_duration_must_be_positive(duration):
    with pytest.raises(ValidationError):
        _conv(duration=duration)


def test_conversation_round_trip_and_defaults():
    c = _conv(meta={"k": [1, 2]})
    d = c.to_dict()
    assert d["audio"] == {"model": None, "user": None}
    assert d["user_audio_existed"] is False
    assert Conversation.from_dict(d) == c
    assert c.words.of("model")[0].text == "hi" and c.words.of("user") == []


def test_records_are_frozen_and_strict():
    c = _conv()
    with pytest.raises(ValidationError):
        c.id = "other"
    with pytest.raises(ValidationError):
        Conversation.from_dict({**c.to_dict(), "unexpected": 1})
    assert c.model_copy(update={"id": "d"}).id == "d" and c.id == "c"


def test_issue_category_must_match_kind():
    judge = JudgeInfo(name="rules")
    Issue(id="i", conversation_id="c", reply_id="c#r0", reply_words=(0, 1), reply_span=(0, 1),
          kind="timing", category="interruption", reason="r", judge=judge)
    with pytest.raises(ValidationError):
        Issue(id="i", conversation_id="c", reply_id="c#r0", reply_words=(0, 1),
              reply_span=(0, 1), kind="content", category="interruption", reason="r", judge=judge)
    with pytest.raises(ValidationError):
        Issue(id="i", conversation_id="c", reply_id="c#r0", reply_words=(0, 1),
              reply_span=(0, 1), kind="content", category="tone", score=6, reason="r", judge=judge)


def test_pair_window_invariant():
    v = ReplyVariant(words=[Word(text="a", start=1, end=2)])
    p = PreferencePair(id="p", conversation_id="c", window=(1.0, 3.0), context_start=0.0,
                       chosen=v, rejected=ReplyVariant(), issue_ids=["i"], strategy="rewrite",
                       category="content")
    assert p.chosen.text == "a" and p.rejected.text == ""
    with pytest.raises(ValidationError):
        p.model_validate({**p.to_dict(), "window": (3.0, 1.0)})
    with pytest.raises(ValidationError):
        p.model_validate({**p.to_dict(), "context_start": 2.0})


def test_pairs_written_before_typed_fields_still_read():
    """A pair of an older manifest: `rejected_source` in `meta`, null `codes_ref` per variant."""
    old = {"id": "p", "conversation_id": "c", "window": [1.0, 3.0], "context_start": 0.0,
           "chosen": {"words": [], "audio": "a.wav", "codes_ref": None},
           "rejected": {"words": [], "audio": "b.wav", "codes_ref": None},
           "issue_ids": ["i"], "strategy": "voice", "category": "content",
           "meta": {"rejected_source": "tts", "anchor": 1.2}}
    p = PreferencePair.from_dict(old)
    assert p.rejected_source == "tts" and p.meta == {"anchor": 1.2} and p.reply_id == ""
    assert "codes_ref" not in p.to_dict()["chosen"]
    with pytest.raises(ValidationError):  # a real codes_ref was never written: not silently lost
        ReplyVariant.from_dict({"words": [], "codes_ref": "shard0:3"})
