"""Full-Duplex-Bench rules on hand-made samples; every expected number is worked out in a comment."""

import math

import numpy as np
import pytest

from duplexalign.fdb_rules import (
    Chunk,
    backchannel_frequency,
    backchannel_jsd,
    backchannel_scan,
    coverage_histogram,
    latency,
    mean_length,
    merge_intervals,
    overlaps,
    response_gaps,
    segment_chunks,
    takeover,
)


def ch(start, end, text="w"):
    return Chunk(text, start, end)


def test_takeover_rule():
    assert takeover([]) == 0  # no word: no take-over
    # 3 words over 0.9 s: D < 1 and <= 3 words -> 0
    assert takeover([ch(0, 0.3), ch(0.3, 0.6), ch(0.6, 0.9)]) == 0
    # 4 words over 0.9 s: more than 3 words -> 1
    assert takeover([ch(0, 0.2), ch(0.2, 0.4), ch(0.4, 0.6), ch(0.6, 0.9)]) == 1
    # 2 words, D = 1.0 exactly: not < 1 -> 1
    assert takeover([ch(0, 0.5), ch(0.5, 1.0)]) == 1
    # quirk: D uses the LAST chunk's end (0.5), not the latest end (1.5): D = 0.5 -> 0
    assert takeover([ch(0, 0.2), ch(0.3, 1.5), ch(0.4, 0.5)]) == 0
    # quirk: a null last end uses its start: D = 2.0 - 0 -> 1
    assert takeover([ch(0, 0.3), ch(2.0, None)]) == 1


def test_latency_clipped_and_only_with_takeover():
    # the FDB smooth turn-taking example: first word 3.36, turn end 2.01 -> 1.35
    words = [ch(3.36, 3.9), ch(4.46, 4.69), ch(4.69, 4.84), ch(4.84, 5.5)]
    assert latency(words, 2.01) == pytest.approx(1.35)
    assert latency(words, 4.0) == 0.0  # started before the user end: clipped at 0
    assert latency([ch(3.0, 3.2)], 2.0) is None  # one short word: TOR 0, no latency


def test_segment_chunks_boundaries():
    a, b, c = ch(1.2, 1.5, "a"), ch(1.8, 2.3, "b"), ch(0.5, 1.1, "c")
    d, e = ch(0.2, 0.9, "d"), ch(2.1, 2.4, "e")
    f, g = ch(1.5, None, "f"), ch(2.0, None, "g")
    h = ch(0.5, 1.0, "h")
    # a inside; b straddles the end; c straddles the start; d before; e after;
    # f null end starting before the end: skipped; g null end at the end: a point inside;
    # h ends exactly at the start: 1.0 > 1.0 is false -> out
    assert segment_chunks([a, b, c, d, e, f, g, h], 1.0, 2.0) == [a, b, c, g]


def test_backchannel_scan_quirks():
    words = [ch(1.1, 1.4, "yeah"), ch(3.1, 3.4), ch(3.5, 3.9)]
    segs = [(1.0, 1.5), (3.0, 4.0), (5.0, 9.0), (10.0, 10.5)]
    scan = backchannel_scan(segs, words)
    # seg 1: 0.5 s, 1 word -> backchannel (TOR 0); seg 2: 1.0 s is not < 1 -> turn (TOR 1) but still
    # counted as a backchannel; seg 3: 4 s > 3 -> TOR 1 and the scan stops (seg 4 never seen)
    assert scan.tor == 1
    assert scan.backchannels == [(1.0, 1.5), (3.0, 4.0)]
    assert scan.strict == [(1.0, 1.5)]
    # TOR is the LAST segment's verdict: a 5-word turn then a lone "mm" -> 0
    words = [ch(0.1 + 0.4 * i, 0.4 + 0.4 * i) for i in range(5)] + [ch(4.1, 4.3, "mm")]
    assert backchannel_scan([(0.0, 2.5), (4.0, 4.4)], words).tor == 0
    assert backchannel_scan([], words).tor == 0
    # 3 words in 0.8 s: not > 3 words, but > 2 -> turn
    assert backchannel_scan([(0.0, 0.8)], [ch(0.0, 0.2), ch(0.3, 0.5), ch(0.5, 0.7)]).tor == 1


def test_frequency():
    assert backchannel_frequency([(1.0, 1.5), (3.0, 4.0)], 10.0) == pytest.approx(0.2)


def test_coverage_histogram():
    # clip 1.0 s -> int(1.0 / 0.2) + 1 = 6 bins; (0.1, 0.5) covers bins 0..int(2.5)=2
    e = 1e-10
    want = np.array([1 + e, 1 + e, 1 + e, e, e, e]) / (3 + 6 * e)
    np.testing.assert_allclose(coverage_histogram([(0.1, 0.5)], 1.0), want, rtol=1e-12)
    # float quirk kept: 0.6 / 0.2 = 2.9999999999999996 -> bin 2, not 3
    assert int(np.argmax(coverage_histogram([(0.6, 0.6)], 1.0))) == 2


def test_jsd_by_hand():
    assert backchannel_jsd([], 10.0, [1.0]) == 1.0  # no backchannel: 1
    # clip 0.2 s -> 2 bins; (0.0, 0.1) -> p = [1, ~1e-10]. Human [0.2, 0.6, 0.2] interpolated to 2
    # points (x = 0 and 1) -> [0.2, 0.2], which scipy normalises to q = [0.5, 0.5]; m = [0.75, 0.25]
    kl_pm = 1.0 * math.log(1 / 0.75)
    kl_qm = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    want = math.sqrt((kl_pm + kl_qm) / 2)  # the distance (sqrt), natural log: 0.46450...
    assert backchannel_jsd([(0.0, 0.1)], 0.2, [0.2, 0.6, 0.2]) == pytest.approx(want, abs=1e-8)


def test_merge_intervals():
    segs = [(2.6, 3.0), (0.0, 1.0), (1.5, 2.0)]
    assert merge_intervals(segs, 0.5) == [(0.0, 2.0), (2.6, 3.0)]  # 0.5 <= 0.5 merges, 0.6 not
    # float arithmetic as in FDB: 2.6 - 2.0 = 0.6000000000000001 > 0.6 stays split
    assert merge_intervals(segs, 0.6) == [(0.0, 2.0), (2.6, 3.0)]
    assert merge_intervals(segs, 0.7) == [(0.0, 3.0)]


def test_overlaps_and_dedup():
    # user (0,2),(3,5) vs model (1,4): overlaps (1,2) then (3,4); stop latencies 1 s each
    ov = overlaps([(0, 2), (3, 5)], [(1, 4)])
    assert ov == [(1, 2), (3, 4)]
    assert mean_length(ov) == pytest.approx(1.0)
    # two overlaps ending at 2.000 s: only the shorter (1, 2) is kept
    assert overlaps([(0, 3)], [(0.5, 2), (1, 2)]) == [(1, 2)]
    assert mean_length([]) is None


def test_response_gaps():
    user = [(0, 1), (1.2, 1.5), (4, 5), (6.5, 7)]
    model = [(2, 3), (6, 6.5)]
    # (0,1) and (1.2,1.5) are both answered at 2: keep the later user end 1.5 -> (1.5, 2);
    # (4,5) -> (5, 6); (6.5, 7): no model start after 7 -> nothing
    gaps = response_gaps(user, model)
    assert gaps == [(1.5, 2), (5, 6)]
    assert mean_length(gaps) == pytest.approx((0.5 + 1.0) / 2)
    # a model start equal to the user end is not "after" it
    assert response_gaps([(0, 2)], [(2, 3)]) == []
