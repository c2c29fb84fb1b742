"""Builders of small streams directories for the trainer tests (written with `ShardWriter`)."""

from __future__ import annotations

from pathlib import Path

import torch

from duplexalign.streams.shards import PairIndex, ShardWriter

K = 4  # codebooks per speaker of the tiny preset
CHOSEN_TOKEN = 10
FLOOR_FRAMES = slice(2, 10)


def make_streams(out: Path, n_pairs: int = 16, ctx: int = 16, win: int = 4, seed: int = 0,
                 pad_rejected: bool = True, floor: bool = False) -> Path:
    """Pairs whose chosen window text is CHOSEN_TOKEN words and rejected is PAD (3) only.

    Each conversation is `[9, ctx + win + 2]` random codes (text mostly PAD); the window is
    frames `[ctx, ctx + win)`; pairs alternate between the categories silence and content.
    With `floor`, the user holds the floor on context frames 2..9 (FLOOR_FRAMES) and nowhere in
    the window.
    """
    g = torch.Generator().manual_seed(seed)
    w = ShardWriter(out, max_bytes=4096)
    for i in range(n_pairs):
        t = ctx + win + 2
        codes = torch.randint(0, 64, (1 + 2 * K, t), generator=g)
        codes[0] = torch.where(torch.rand(t, generator=g) < 0.7, 3, codes[0])
        cid = f"c{i}"
        ctx_floor = None
        if floor:
            ctx_floor = torch.zeros(t, dtype=torch.bool)
            ctx_floor[FLOOR_FRAMES] = True
        w.add_context(cid, codes, ctx_floor)
        chosen = codes[: 1 + K, ctx:ctx + win].clone()
        rejected = chosen.clone()
        chosen[0] = CHOSEN_TOKEN
        chosen[0, 0] = 0  # EPAD before the word
        if pad_rejected:
            rejected[0] = 3
        entry = PairIndex(id=f"p{i}", conversation_id=cid, shard="", context_start_frame=0,
                          window_start_frame=ctx, window_end_frame=ctx + win,
                          category="silence" if i % 2 == 0 else "content", strategy="test",
                          num_codebooks=K)
        w.add_pair(entry, chosen, rejected,
                   torch.zeros(win, dtype=torch.bool) if floor else None)
    w.close()
    return out


def make_run_streams(run: Path, **kwargs) -> Path:
    """`make_streams` into `run/streams`, with the streams stage's DONE marker (train checks it)."""
    from duplexalign.runs import RunDir

    out = make_streams(run / "streams", **kwargs)
    RunDir(run).mark_done("streams")
    return out
