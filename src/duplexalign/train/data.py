"""Training batches from streams shards: a deterministic, resumable, constant-memory pair stream.

Owns the order in which pairs are seen (a seeded shuffle buffer over the lazily read index, so memory
does not grow with the number of pairs), the data position used by exact resume (epoch + pairs
consumed), the split of a global batch across ranks and micro-batches, and the typed `PairBatch`:
chosen and rejected `[B, R, T]` right-padded with -1 (no input, no loss), the window mask, the shared
context split and each pair's row in the index (the key of the reference cache).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from duplexalign.errors import ConfigError
from duplexalign.streams.shards import PairIndex, ShardReader, read_index

log = logging.getLogger(__name__)


@dataclass
class PairBatch:
    """A batch of B preference pairs.

    Attributes:
        chosen: `[B, R, T]` int64 codes, -1 after each pair's end.
        rejected: `[B, R, T]`, equal to `chosen` outside the window and on user rows.
        window: `[B, T]` bool, frames of the pair window.
        split: min window start over the batch (frames before it are shared context).
        rows: `[B]` int64, position of each pair in the index.
        ids: pair ids.
        categories: pair categories (content | interruption | silence).
        floor: `[B, T]` bool, frames where the user holds the floor and the chosen variant's
            model is silent (False after each pair's end); None when the shards have no labels.
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    window: torch.Tensor
    split: int
    rows: torch.Tensor
    ids: list[str]
    categories: list[str]
    floor: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)


def collate(reader: ShardReader, items: list[tuple[int, PairIndex]]) -> PairBatch:
    """Load and right-pad the pairs `items` (index row, entry) into a `PairBatch`."""
    pairs = [reader.pair_codes(e) for _, e in items]
    t = max(c.shape[1] for c, _ in pairs)
    r = pairs[0][0].shape[0]
    b = len(items)
    chosen = torch.full((b, r, t), -1, dtype=torch.int64)
    rejected = chosen.clone()
    window = torch.zeros(b, t, dtype=torch.bool)
    floors = [reader.floor(e) for _, e in items]
    floor = None if any(f is None for f in floors) else torch.zeros(b, t, dtype=torch.bool)
    starts = []
    for i, ((c, rj), (_, e)) in enumerate(zip(pairs, items, strict=True)):
        n = c.shape[1]
        chosen[i, :, :n] = c
        rejected[i, :, :n] = rj
        w0 = e.window_start_frame - e.context_start_frame
        window[i, w0:n] = True
        starts.append(w0)
        if floor is not None:
            floor[i, :n] = floors[i]
    return PairBatch(chosen, rejected, window, min(starts),
                     torch.tensor([row for row, _ in items]), [e.id for _, e in items],
                     [e.category for _, e in items], floor)


def pair_stream(streams_dir: str | Path, seed: int, epoch: int, buffer: int = 4096,
                skip_rows: int = 0) -> Iterator[tuple[int, PairIndex]]:
    """Yield `(index row, entry)` in a seeded shuffle-buffer order for `epoch` (deterministic).

    Rows `< skip_rows` (held out for validation) are skipped.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    buf: list[tuple[int, PairIndex]] = []
    for row, entry in enumerate(read_index(streams_dir)):
        if row < skip_rows:
            continue
        buf.append((row, entry))
        if len(buf) >= buffer:
            yield buf.pop(rng.randrange(len(buf)))
    while buf:
        yield buf.pop(rng.randrange(len(buf)))


def count_pairs(streams_dir: str | Path) -> int:
    """Number of pairs in the index (one lazy pass)."""
    return sum(1 for _ in read_index(streams_dir))


class GlobalBatches:
    """Global batches of `size` pairs over epochs, resumable from `(epoch, consumed)`.

    Args:
        streams_dir: streams directory (shards + index).
        size: pairs per optimizer step over all ranks and micro-batches.
        seed: shuffle seed.
        epoch, consumed: the data position to start from (from a checkpoint).
        buffer: shuffle-buffer size (memory bound).
        skip_rows: index rows held out (the first N).
    """

    def __init__(self, streams_dir: str | Path, size: int, seed: int = 0, epoch: int = 0,
                 consumed: int = 0, buffer: int = 4096, skip_rows: int = 0):
        self.dir, self.size, self.seed, self.buffer = Path(streams_dir), size, seed, buffer
        self.skip_rows = skip_rows
        self.epoch, self.consumed = epoch, consumed
        self._warned = False
        self._it = self._open()

    def _open(self) -> Iterator[tuple[int, PairIndex]]:
        it = pair_stream(self.dir, self.seed, self.epoch, self.buffer, self.skip_rows)
        for _ in range(self.consumed):
            next(it)
        return it

    def position(self) -> dict[str, int]:
        """The data position to store in a checkpoint."""
        return {"epoch": self.epoch, "consumed": self.consumed}

    def next(self) -> list[tuple[int, PairIndex]]:
        """The next global batch. A trailing partial batch of an epoch is dropped, except when a
        whole epoch is smaller than `size`: then the batch is the whole epoch (with a warning,
        once), so training never loops looking for pairs that are not there.

        Raises:
            ConfigError: no pairs to train on (an empty index, or all of it held out).
        """
        out: list[tuple[int, PairIndex]] = []
        while len(out) < self.size:
            try:
                out.append(next(self._it))
                self.consumed += 1
            except StopIteration:
                whole_epoch = self.consumed == len(out)  # this call saw the epoch from its start
                self.epoch, self.consumed = self.epoch + 1, 0
                self._it = self._open()
                if whole_epoch and not out:
                    held = f" after holding out {self.skip_rows} (train.val.held_out)" \
                        if self.skip_rows else ""
                    raise ConfigError(f"{self.dir}: no pairs to train on{held}") from None
                if whole_epoch:
                    if not self._warned:
                        log.warning("train.batch_size=%d is larger than the %d training pairs: "
                                    "each step uses all of them", self.size, len(out))
                        self._warned = True
                    return out
                out = []
        return out


def shard_batch(items: list, rank: int, world: int, micro: int) -> list[list]:
    """This rank's micro-batches of a global batch: rank r takes items r, r+world, ...; split in
    chunks of `micro`."""
    mine = items[rank::world]
    return [mine[i:i + micro] for i in range(0, len(mine), micro)]
