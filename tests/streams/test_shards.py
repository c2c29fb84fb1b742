"""Shard round trip: contexts stored once, variants replace only the window rows."""

from __future__ import annotations

import torch

from duplexalign.streams.layout import Layout
from duplexalign.streams.shards import PairIndex, ShardReader, ShardWriter, read_index


def test_round_trip_shares_context_and_replaces_window(tmp_path):
    k = 2
    lay = Layout(k)
    ctx = torch.arange(lay.num_rows * 10).reshape(lay.num_rows, 10)  # [5, 10]
    w = ShardWriter(tmp_path, max_bytes=1 << 20)
    entries = []
    for pid, (cs, ws, we) in {"p1": (2, 6, 9), "p2": (0, 3, 5)}.items():
        e = PairIndex(id=pid, conversation_id="c", shard="", context_start_frame=cs,
                      window_start_frame=ws, window_end_frame=we, category="content",
                      strategy="rewrite", num_codebooks=k)
        chosen = torch.full((1 + k, we - ws), 7)
        rejected = torch.full((1 + k, we - ws), 8)
        w.add_context("c", ctx)
        w.add_pair(e, chosen, rejected)
        entries.append(e)
    w.close()
    assert len(list(tmp_path.glob("shard-*.safetensors"))) == 1  # one context, two pairs
    idx = list(read_index(tmp_path))
    assert [e.id for e in idx] == ["p1", "p2"]
    r = ShardReader(tmp_path)
    c, rj = r.pair_codes(idx[0])
    expect = ctx[:, 2:9].clone()
    assert torch.equal(c[:, :4], expect[:, :4]) and torch.equal(rj[:, :4], expect[:, :4])
    # rows 0..k (text + model) replaced inside the window; user rows kept from the context
    assert torch.equal(c[:1 + k, 4:], torch.full((1 + k, 3), 7))
    assert torch.equal(rj[:1 + k, 4:], torch.full((1 + k, 3), 8))
    assert torch.equal(c[1 + k:, 4:], expect[1 + k:, 4:])
    # resume: a second writer sees both pairs as done
    assert ShardWriter(tmp_path).has_pair("p2")


def test_floor_labels_round_trip_with_the_window_replaced(tmp_path):
    k = 1
    lay = Layout(k)
    ctx = torch.zeros(lay.num_rows, 10, dtype=torch.int64)
    floor = torch.tensor([0, 1, 1, 1, 0, 1, 1, 1, 1, 0], dtype=torch.bool)
    w = ShardWriter(tmp_path)
    e = PairIndex(id="p", conversation_id="c", shard="", context_start_frame=1,
                  window_start_frame=5, window_end_frame=8, category="interruption",
                  strategy="retime", num_codebooks=k)
    w.add_context("c", ctx, floor)
    v = torch.zeros(1 + k, 3, dtype=torch.int64)
    w.add_pair(e, v, v, torch.tensor([1, 0, 0], dtype=torch.bool))
    w.close()
    (entry,) = read_index(tmp_path)
    got = ShardReader(tmp_path).floor(entry)
    # context frames 1..4 from the conversation, window frames 5..7 from the chosen variant
    assert got.tolist() == [True, True, True, False, True, False, False]


def test_shards_without_floor_labels_read_none(tmp_path):
    w = ShardWriter(tmp_path)
    e = PairIndex(id="p", conversation_id="c", shard="", context_start_frame=0,
                  window_start_frame=2, window_end_frame=4, category="content",
                  strategy="rewrite", num_codebooks=1)
    w.add_context("c", torch.zeros(3, 4, dtype=torch.int64))
    w.add_pair(e, torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 2, dtype=torch.int64))
    w.close()
    assert ShardReader(tmp_path).floor(next(read_index(tmp_path))) is None
