"""The review decisions log: RUN/review/decisions.jsonl.gz, appended by every reviewer.

Owns the on-disk form of human decisions and how they resolve. Each append is one complete gzip
member written with a single `write` under an exclusive `flock` and fsynced, so several reviewers
(processes) can append side by side and a crash loses at most the entry being written. A crash
mid-write leaves a cut last member: the next writer finds it (it checks only the bytes appended
since it last looked), moves those bytes to `decisions.jsonl.gz.broken-<offset>` and truncates the
log to its last complete member before appending. The file stays a valid multi-member gzip that
`manifest.iter_dicts` reads. Nothing is ever rewritten: history is kept; `latest` picks each
reviewer's latest decision per target and `consensus` the decision that counts for the pipeline.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from duplexalign.manifest import read_manifest
from duplexalign.records import Decision

DECISIONS = "review/decisions.jsonl.gz"
"""Where a run's decisions live, relative to the run directory."""


def new_decision_id() -> str:
    """A fresh unique id for one log entry."""
    return uuid.uuid4().hex


def complete_end(data: bytes, chunk: int = 2048) -> int:
    """Byte length of the complete gzip members at the start of `data` (a cut or corrupt
    member ends the count). Input goes in small chunks so that a log of many small members is
    scanned in linear time."""
    view, n, pos = memoryview(data), len(data), 0
    while pos < n:
        d = zlib.decompressobj(wbits=31)
        p = pos
        try:
            while not d.eof and p < n:
                piece = view[p:p + chunk]
                d.decompress(piece)
                p += len(piece)
        except zlib.error:
            return pos
        if not d.eof:
            return pos
        pos = p - len(d.unused_data)
    return pos


class DecisionLog:
    """Append and read the decisions of one run directory.

    Args:
        run_dir: the run directory; the log is `run_dir/review/decisions.jsonl.gz`.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / DECISIONS
        self._checked = 0  # bytes known to be complete members

    def append(self, decisions: Iterable[Decision]) -> int:
        """Append `decisions` as one gzip member (crash-safe, safe across processes)."""
        lines = "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in decisions)
        if not lines:
            return 0
        blob = gzip.compress(lines.encode("utf-8"), compresslevel=6, mtime=0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            start = self._checked if self._checked <= size else 0
            os.lseek(fd, start, os.SEEK_SET)
            tail = _read_all(fd, size - start)
            good = start + complete_end(tail)
            if good < size:  # a writer crashed mid-member: keep its bytes aside, cut them off
                broken = self.path.with_name(f"{self.path.name}.broken-{good}")
                broken.write_bytes(tail[good - start:])
                os.ftruncate(fd, good)
            os.lseek(fd, good, os.SEEK_SET)
            os.write(fd, blob)
            os.fsync(fd)
            self._checked = good + len(blob)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return lines.count("\n")

    def read_new(self, offset: int) -> tuple[list[Decision], int]:
        """The decisions in the complete members from byte `offset` on, and the offset after
        them (a reader that keeps the offset reads each member once; a cut tail waits)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], 0
        end = complete_end(data)
        text = gzip.decompress(data[:end]).decode("utf-8") if end else ""
        out = [Decision.model_validate_json(line) for line in text.splitlines() if line.strip()]
        return out, offset + end

    def read(self) -> Iterator[Decision]:
        """Every decision in the log, oldest first (history included)."""
        return read_manifest(self.path, Decision)

    def size(self) -> int:
        """The log's size in bytes (0 when absent): changes whenever someone appends."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


def _read_all(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            break
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def make_decision(reviewer: str, target: str, target_id: str, conversation_id: str,
                  verdict: str, **fields) -> Decision:
    """A new decision stamped with a fresh id and the current time."""
    return Decision(id=new_decision_id(), reviewer=reviewer, time=time.time(), target=target,
                    target_id=target_id, conversation_id=conversation_id, verdict=verdict,
                    **fields)


def shown_first(pair_id: str, reviewer: str) -> str:
    """Which variant of a pair a reviewer hears as A ("chosen" or "rejected"): fixed per
    (pair, reviewer) and blind to them."""
    h = hashlib.sha256(f"{pair_id}\0{reviewer}".encode()).digest()[0]
    return "chosen" if h % 2 == 0 else "rejected"


def latest(decisions: Iterable[Decision]) -> dict[str, dict[str, Decision]]:
    """target_key -> reviewer -> that reviewer's latest decision (by time; log order on ties)."""
    out: dict[str, dict[str, Decision]] = {}
    for d in decisions:
        per = out.setdefault(d.target_key, {})
        old = per.get(d.reviewer)
        if old is None or d.time >= old.time:
            per[d.reviewer] = d
    return out


def consensus(per_reviewer: dict[str, Decision]) -> Decision:
    """The decision that counts for a target when reviewers differ: the majority verdict class
    (an edit counts as a confirm), ties broken by the most recent decision; within the winning
    class, the most recent decision (so the latest edit's text is the one used)."""
    def cls(d: Decision) -> str:
        return "confirm" if d.verdict == "edit" else d.verdict

    votes: dict[str, list[Decision]] = {}
    for d in per_reviewer.values():
        votes.setdefault(cls(d), []).append(d)
    best = max(votes.values(), key=lambda ds: (len(ds), max(d.time for d in ds)))
    return max(best, key=lambda d: d.time)


def resolved(decisions: Iterable[Decision]) -> dict[str, Decision]:
    """target_key -> the decision that counts (`consensus` of the reviewers' latest)."""
    return {k: consensus(v) for k, v in latest(decisions).items()}
