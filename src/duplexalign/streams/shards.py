"""Shards on disk: the contract between `streams` (writer) and `train` (reader).

Owns the storage of tokenized pairs. A conversation's full token tensor (`codes [R, T]`, the logged
version, see `layout.py`) is stored once as `ctx/<conversation_id>`; each pair stores only its two
variants of the rows that differ (`pair/<pair_id>/chosen` and `.../rejected`, `[1 + K, W]`: text and
model audio inside the window). The index manifest (`index.jsonl.gz`, one `PairIndex` per pair) says
which shard holds what. Reading is lazy (`safetensors.safe_open`), so memory does not grow with the
dataset. The training tensor of a pair variant is the context slice `[context_start_frame,
window_end_frame)` with the variant rows replaced inside the window. Optional floor labels (frames
where the user holds the floor and the model is silent) follow the same scheme: `floor/<conversation_id>`
`[T]` for the logged conversation, `pair/<pair_id>/floor` `[W]` for the chosen variant's window.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from safetensors import safe_open
from safetensors.torch import save_file

from duplexalign.manifest import ManifestWriter, read_manifest
from duplexalign.streams.layout import Layout

INDEX_NAME = "index.jsonl.gz"


class PairIndex(BaseModel):
    """Where one tokenized pair lives and which frames it covers.

    Frames are 12.5 Hz indices into the conversation's context tensor; ends are exclusive.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    conversation_id: str
    shard: str
    context_start_frame: int
    window_start_frame: int
    window_end_frame: int
    category: str
    strategy: str
    num_codebooks: int
    chosen_text_tokens: int = 0
    rejected_text_tokens: int = 0

    @property
    def num_frames(self) -> int:
        """Frames of the training tensor (context + window)."""
        return self.window_end_frame - self.context_start_frame

    @property
    def window_frames(self) -> int:
        """Frames of the window where the variants differ."""
        return self.window_end_frame - self.window_start_frame


class ShardWriter:
    """Accumulates contexts and pair variants and flushes them into numbered safetensors shards.

    Args:
        out_dir: the streams directory (shards + index manifest).
        max_bytes: flush a shard once its tensors exceed this size.
    """

    def __init__(self, out_dir: str | Path, max_bytes: int = 256 << 20):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.index = ManifestWriter(self.out_dir / INDEX_NAME, resume=True)
        existing = sorted(self.out_dir.glob("shard-*.safetensors"))
        self._next = len(existing)
        self._tensors: dict[str, torch.Tensor] = {}
        self._pending: list[PairIndex] = []
        self._bytes = 0

    def has_pair(self, pair_id: str) -> bool:
        """True when the pair is already in a finished shard (resume)."""
        return pair_id in self.index

    def _name(self) -> str:
        return f"shard-{self._next:05d}.safetensors"

    def add_context(self, conversation_id: str, codes: torch.Tensor,
                    floor: torch.Tensor | None = None) -> None:
        """Store a conversation's context tensor `codes [R, T]` (int) once per shard, and its
        floor labels `floor [T]` (bool) when given."""
        key = f"ctx/{conversation_id}"
        if key not in self._tensors:
            t = codes.to(torch.int16 if codes.max() < 32767 else torch.int32).contiguous()
            self._tensors[key] = t
            self._bytes += t.numel() * t.element_size()
            if floor is not None:
                if floor.shape != (codes.shape[1],):
                    raise ValueError(f"floor labels {tuple(floor.shape)} do not match "
                                     f"{codes.shape[1]} frames of {conversation_id!r}")
                self._tensors[f"floor/{conversation_id}"] = floor.to(torch.uint8).contiguous()
                self._bytes += floor.numel()

    def add_pair(self, entry: PairIndex, chosen: torch.Tensor, rejected: torch.Tensor,
                 chosen_floor: torch.Tensor | None = None) -> None:
        """Store a pair's variants, `chosen`/`rejected` `[1 + K, W]` (text + model audio rows),
        and the chosen variant's floor labels `chosen_floor [W]` (bool) when given.

        The conversation's context must have been added to this shard with `add_context` first.
        """
        k = Layout(entry.num_codebooks)
        w = entry.window_frames
        if chosen.shape != (k.variant_rows.stop, w) or rejected.shape != chosen.shape:
            raise ValueError(f"pair {entry.id}: variants must be [{k.variant_rows.stop}, {w}], got "
                             f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
        if f"ctx/{entry.conversation_id}" not in self._tensors:
            raise ValueError(f"pair {entry.id}: add_context({entry.conversation_id!r}) first")
        for side, t in (("chosen", chosen), ("rejected", rejected)):
            t = t.to(torch.int32).contiguous()
            self._tensors[f"pair/{entry.id}/{side}"] = t
            self._bytes += t.numel() * t.element_size()
        if chosen_floor is not None:
            if chosen_floor.shape != (w,):
                raise ValueError(f"pair {entry.id}: chosen floor labels must be [{w}], got "
                                 f"{tuple(chosen_floor.shape)}")
            self._tensors[f"pair/{entry.id}/floor"] = chosen_floor.to(torch.uint8).contiguous()
            self._bytes += w
        self._pending.append(entry.model_copy(update={"shard": self._name()}))
        if self._bytes >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the current shard (atomically) and index its pairs."""
        if not self._pending:
            self._tensors.clear()
            self._bytes = 0
            return
        path = self.out_dir / self._name()
        tmp = path.with_name(path.name + ".tmp")
        save_file(self._tensors, str(tmp))
        tmp.replace(path)
        for e in self._pending:
            self.index.write(e)
        self.index.flush()
        self._next += 1
        self._tensors.clear()
        self._pending.clear()
        self._bytes = 0

    def close(self) -> None:
        """Flush the last shard and finalise the index manifest."""
        self.flush()
        self.index.close()


def read_index(streams_dir: str | Path) -> Iterator[PairIndex]:
    """Iterate the pair index of a streams directory lazily."""
    return read_manifest(Path(streams_dir) / INDEX_NAME, PairIndex)


class ShardReader:
    """Lazy access to pair tensors in a streams directory (one open handle per shard)."""

    def __init__(self, streams_dir: str | Path):
        self.dir = Path(streams_dir)
        self._handles: dict[str, object] = {}
        self._keys: dict[str, set[str]] = {}

    def _open(self, shard: str):
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.dir / shard), framework="pt")
        return self._handles[shard]

    def context(self, entry: PairIndex) -> torch.Tensor:
        """Context codes `[R, num_frames]` (int64) of the pair, from context start to window end."""
        f = self._open(entry.shard)
        ctx = f.get_slice(f"ctx/{entry.conversation_id}")
        return ctx[:, entry.context_start_frame:entry.window_end_frame].to(torch.int64)

    def variants(self, entry: PairIndex) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) variant rows, each `[1 + K, W]` int64."""
        f = self._open(entry.shard)
        return (f.get_tensor(f"pair/{entry.id}/chosen").to(torch.int64),
                f.get_tensor(f"pair/{entry.id}/rejected").to(torch.int64))

    def floor(self, entry: PairIndex) -> torch.Tensor | None:
        """The chosen variant's floor labels `[num_frames]` bool (context slice with the window
        replaced), or None when the shard was written without floor labels."""
        f = self._open(entry.shard)
        keys = self._keys.setdefault(entry.shard, set(f.keys()))
        ctx_key, win_key = f"floor/{entry.conversation_id}", f"pair/{entry.id}/floor"
        if ctx_key not in keys or win_key not in keys:
            return None
        out = f.get_slice(ctx_key)[entry.context_start_frame:entry.window_end_frame].bool()
        out[entry.window_start_frame - entry.context_start_frame:] = f.get_tensor(win_key).bool()
        return out

    def pair_codes(self, entry: PairIndex) -> tuple[torch.Tensor, torch.Tensor]:
        """Full training tensors `(chosen, rejected)`, each `[R, num_frames]` int64.

        Both share every row outside the window and the user rows inside it.
        """
        ctx = self.context(entry)
        chosen_rows, rejected_rows = self.variants(entry)
        rows = Layout(entry.num_codebooks).variant_rows
        w0 = entry.window_start_frame - entry.context_start_frame
        out = []
        for v in (chosen_rows, rejected_rows):
            c = ctx.clone()
            c[rows, w0:] = v
            out.append(c)
        return out[0], out[1]
