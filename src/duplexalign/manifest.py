"""Streaming read/write of record manifests (JSON lines, gzip-compressed when the name ends in .gz).

Owns the on-disk form of every record collection. Readers iterate lazily so memory does not grow
with the manifest; `ManifestWriter` appends, skips ids that are already in the file (so a resumed
stage never duplicates work), and finalises atomically: it writes to `<name>.partial` and renames on
close, so a crash never leaves a half-written manifest under the final name. `GroupReader`
merge-joins a manifest written in conversation order with the conversations, one group at a time, in
constant memory.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from duplexalign.errors import ManifestError

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


def _is_gz(path: Path) -> bool:
    # The writer's side files (`.partial`, `.partial.tmp`) keep the compression of the final name.
    name = path.name
    for suffix in (".tmp", ".partial"):
        name = name.removesuffix(suffix)
    return name.endswith(".gz")


def _open(path: Path, mode: str) -> IO[str]:
    if _is_gz(path):
        # Level 1: ten times faster than gzip's default 9 for about 15% more bytes (working files).
        # mtime=0: no time in the header, so the same records give the same bytes.
        return io.TextIOWrapper(gzip.GzipFile(path, mode + "b", compresslevel=1, mtime=0),
                                encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_dicts(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of a manifest.

    A crash while writing leaves a truncated tail (a cut gzip member or a last line without its
    newline); iteration ends cleanly before it. Any other malformed line raises `ManifestError`.
    """
    path = Path(path)
    if not path.exists():
        return
    with _open(path, "r") as f:
        try:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    if not raw.endswith("\n"):
                        return  # the unfinished last line of a crashed writer
                    raise ManifestError(f"{path}:{lineno}: not JSON ({e})") from e
        except EOFError:
            return
        except (gzip.BadGzipFile, UnicodeDecodeError) as e:
            raise ManifestError(f"{path}: not a readable manifest ({e})") from e


def read_manifest(path: str | Path, record_type: type[R]) -> Iterator[R]:
    """Yield records of `record_type` from a manifest, lazily."""
    for i, d in enumerate(iter_dicts(path)):
        try:
            yield record_type.model_validate(d)
        except ValidationError as e:
            raise ManifestError(f"{path}: record {i} is not a valid {record_type.__name__}: {e}",
                                record_id=str(d.get("id"))) from e


def write_manifest(path: str | Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write all `records` to `path` atomically; returns the number written."""
    with ManifestWriter(path, resume=False) as w:
        for r in records:
            w.write(r)
        return w.count


def _dumps(d: dict[str, Any]) -> str:
    """One JSON line; text that is not valid Unicode (lone surrogates from a badly decoded input)
    is kept as JSON escapes instead of failing the write."""
    line = json.dumps(d, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(d, ensure_ascii=True)
    return line


class ManifestWriter:
    """Append-only manifest writer that skips ids already written and finalises atomically.

    Records without an `id_field` are always written (and kept on resume).

    While open, records go to `<path>.partial`. With `resume=True` (the default), records already in
    `<path>` or in a leftover `<path>.partial` are kept and their ids are skipped. `close()` renames the
    partial file onto `path`.

    Args:
        path: final manifest path (".jsonl" or ".jsonl.gz").
        resume: keep and skip what an earlier run already wrote.
        id_field: the key that identifies a record.
    """

    def __init__(self, path: str | Path, resume: bool = True, id_field: str = "id"):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.id_field = id_field
        self.done: set[str] = set()
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, Any]] = []
        if resume:
            for src in (self.path, self.partial):
                for d in iter_dicts(src):
                    raw_key = d.get(id_field)
                    if raw_key is None:
                        kept.append(d)
                    elif str(raw_key) not in self.done:
                        self.done.add(str(raw_key))
                        kept.append(d)
        # Rewrite what we keep into a fresh partial: gzip members cannot be appended after a crash.
        tmp = self.partial.with_name(self.partial.name + ".tmp")
        with _open(tmp, "w") as f:
            for d in kept:
                f.write(_dumps(d) + "\n")
        os.replace(tmp, self.partial)
        self.count = len(kept)
        self._f: IO[str] | None = _open(self.partial, "a")

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.done

    def write(self, record: BaseModel | dict[str, Any]) -> bool:
        """Append `record` unless its id was already written; returns True if written."""
        d = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        raw_key = d.get(self.id_field)
        key = None if raw_key is None else str(raw_key)  # records without an id are never skipped
        if key is not None and key in self.done:
            return False
        if self._f is None:
            raise ManifestError(f"{self.path}: write after close", record_id=key)
        self._f.write(_dumps(d) + "\n")
        if key is not None:
            self.done.add(key)
        self.count += 1
        return True

    def flush(self) -> None:
        """Flush buffered records to the partial file."""
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        """Finish the file and atomically move it to its final name."""
        if self._f is None:
            return
        self._f.close()
        self._f = None
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Close without finalising (the partial file stays for a later resume)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class GroupReader(Generic[T]):
    """The records of a stream whose groups (records sharing a key, e.g. a conversation id) come
    in a known order, handed out one group at a time: the right side of a merge join.

    Memory holds one record of look-ahead. Ask for the keys in the stream's order (e.g. walk the
    conversations and `take(conversation.id)`); a key with no group gets []. Records left when the
    walk ends (`rest`) were out of order or belong to keys the walk never asked for.

    Args:
        records: the stream, each group contiguous.
        key: the group key of a record.
    """

    def __init__(self, records: Iterable[T], key: Callable[[T], str]):
        self._it = iter(records)
        self._key = key
        self._head: T | None = next(self._it, None)

    def take(self, key: str) -> list[T]:
        """The group of `key` if it is next in the stream (consumed), else []."""
        out: list[T] = []
        while self._head is not None and self._key(self._head) == key:
            out.append(self._head)
            self._head = next(self._it, None)
        return out

    def rest(self) -> Iterator[T]:
        """The records not taken (consumes them)."""
        while self._head is not None:
            yield self._head
            self._head = next(self._it, None)
