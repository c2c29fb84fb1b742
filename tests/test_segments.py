"""segments: words -> segments and cross-channel geometry on hand-made timelines.

Timeline used below (seconds):

    model: [0.0-0.4 "hi"] [0.5-1.0 "there"]          gap 2.0          [3.0-3.5 "ok"]
    user :                       [0.9-1.5 "hey"] [1.6-2.2 "you"]
"""

import pytest
from factories import word

from duplexalign.records import ChannelWords, Conversation, Source
from duplexalign.segments import (
    conversation_segments,
    floor_at,
    floor_timeline,
    gap_before,
    last_before,
    next_after,
    overlap,
    replies,
    reply_target,
    to_segments,
)

w = word


MODEL = [w("hi", 0.0, 0.4), w("there", 0.5, 1.0), w("ok", 3.0, 3.5)]
USER = [w("hey", 0.9, 1.5), w("you", 1.6, 2.2)]


@pytest.fixture
def conv():
    return Conversation(id="c", duration=4.0, words=ChannelWords(model=MODEL, user=USER),
                        source=Source(reader="t", path="t", digest=""))


def test_to_segments_splits_on_gaps_above_max_gap():
    segs = to_segments(MODEL, "model", max_gap=0.8)
    assert [(s.start, s.end, s.text) for s in segs] == [(0.0, 1.0, "hi there"), (3.0, 3.5, "ok")]
    assert [len(s.words) for s in segs] == [2, 1]
    # a gap exactly equal to max_gap does not split; a smaller max_gap splits everything
    assert len(to_segments(MODEL, "model", max_gap=2.0)) == 1
    assert len(to_segments(MODEL, "model", max_gap=0.05)) == 3
    assert to_segments([], "user") == []


def test_segment_end_is_the_latest_word_end():
    words = [w("long", 0.0, 2.0), w("inner", 0.5, 0.7), w("next", 2.5, 3.0)]
    segs = to_segments(words, "user", max_gap=0.6)
    # "next" starts 0.5 s after the running end 2.0, not 1.8 s after "inner"
    assert [(s.start, s.end) for s in segs] == [(0.0, 3.0)]


def test_conversation_segments_and_replies(conv):
    segs = conversation_segments(conv, max_gap=0.8)
    assert [(s.start, s.end) for s in segs["user"]] == [(0.9, 2.2)]
    assert [r.text for r in replies(conv)] == ["hi there", "ok"]
    assert all(r.channel == "model" for r in replies(conv))


def test_reply_target_is_the_running_reply_or_the_silence(conv):
    # replies "hi there" [0, 1.0] (words 0-2) and "ok" [3.0, 3.5] (word 2-3)
    assert reply_target(conv, 0.5) == ("c#r0", (0, 2))
    assert reply_target(conv, 3.0 - 0.0005) == ("c#r1", (2, 3))  # 1 ms of slack before a start
    assert reply_target(conv, 2.0) == ("c#silence2000", (2, 2))  # two words start before 2 s


def test_overlap():
    assert overlap((0.0, 1.0), (0.9, 2.2)) == pytest.approx(0.1)
    assert overlap((0.0, 1.0), (1.0, 2.0)) == 0.0
    assert overlap((0.0, 1.0), (2.0, 3.0)) == 0.0
    assert overlap((0.0, 5.0), (1.0, 2.0)) == 1.0


def test_floor_at_and_timeline(conv):
    segs = conversation_segments(conv)
    m, u = segs["model"], segs["user"]
    assert floor_at(m, u, 0.2) == "model"
    assert floor_at(m, u, 0.95) == "both"
    assert floor_at(m, u, 1.0) == "user"  # end is exclusive
    assert floor_at(m, u, 2.5) == "none"
    assert floor_timeline(m, u, 4.0) == [
        (0.0, 0.9, "model"), (0.9, 1.0, "both"), (1.0, 2.2, "user"), (2.2, 3.0, "none"),
        (3.0, 3.5, "model"), (3.5, 4.0, "none"),
    ]


def test_timeline_clips_to_duration():
    segs = to_segments([w("a", 1.0, 5.0)], "model")
    assert floor_timeline(segs, [], 3.0) == [(0.0, 1.0, "none"), (1.0, 3.0, "model")]


def test_neighbours_and_gap_before(conv):
    segs = conversation_segments(conv)
    m, u = segs["model"], segs["user"]
    assert last_before(m, 3.0).text == "hi there"
    assert last_before(m, 0.0) is None
    assert next_after(m, 1.0).text == "ok"
    assert next_after(m, 3.1) is None
    assert gap_before(m[1], u) == pytest.approx(0.8)  # model "ok" at 3.0 after user ended at 2.2
    assert gap_before(u[0], m) == pytest.approx(-0.1)  # user started 0.1 s before model ended
    assert gap_before(m[0], u) is None


def test_replies_get_their_id_and_word_range_once(conv):
    from duplexalign.segments import replies

    reps = replies(conv, 0.8)
    assert [(r.id, r.word_range, r.text) for r in reps] == [
        ("c#r0", (0, 2), "hi there"), ("c#r1", (2, 3), "ok")]


def test_turns_group_segments_across_mid_turn_pauses():
    from duplexalign.segments import turns

    segs = to_segments([w("so", 0.0, 0.5), w("i", 1.4, 1.6), w("go", 3.0, 3.2)], "user", 0.8)
    assert [[s.text for s in t] for t in turns(segs, 1.0)] == [["so", "i"], ["go"]]


def test_one_backchannel_and_onset_definition():
    from duplexalign.segments import is_backchannel, onset_interrupts

    yeah = [w("yeah", 0.0, 0.3), w("right", 0.4, 0.6)]
    assert is_backchannel(yeah, 0.0, 0.6, 2, 1.0)
    assert is_backchannel(yeah * 3, 0.0, 3.0, 2, 1.0, lexicon=["Yeah", "right"])
    assert not is_backchannel(yeah * 3, 0.0, 3.0, 2, 1.0)
    assert onset_interrupts(1.0, 0.0, 2.0, 0.2) and not onset_interrupts(1.9, 0.0, 2.0, 0.2)
