"""The review app's index of a run: one SQLite file so that 100k conversations list and open fast.

Owns RUN/review/index.sqlite, a cache derived from the run's manifests (conversations, annotations,
pairs): one row per conversation, issue and pair, each with its JSON record (zlib-compressed) and the
columns the list filters on (issue category, source rule/judge). It is rebuilt when a manifest's size
or modification time changes, in one streaming pass (`GroupReader` joins issues and pairs to their
conversation), and written to a temporary file that replaces the old one. Which issues a reviewer has
decided lives in a per-connection TEMP table (`set_decided`), so the "undecided only" filter is one
query. The index never holds decisions: the log (`review.store`) is the only truth.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from duplexalign.errors import BadInput
from duplexalign.manifest import iter_dicts
from duplexalign.records import Conversation, Issue, PreferencePair
from duplexalign.runs import ANNOTATIONS, CONVERSATIONS, PAIRS, RunDir

log = logging.getLogger(__name__)

INDEX = "review/index.sqlite"
VERSION = 2
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE conversations (row INTEGER PRIMARY KEY, id TEXT UNIQUE, duration REAL,
                            n_issues INTEGER, categories TEXT);
CREATE TABLE conversation_body (row INTEGER PRIMARY KEY, body BLOB);
CREATE TABLE issues (id TEXT PRIMARY KEY, conv_row INTEGER, category TEXT, source TEXT,
                     start REAL);
CREATE TABLE issue_body (id TEXT PRIMARY KEY, conv_row INTEGER, body BLOB);
CREATE TABLE pairs (id TEXT PRIMARY KEY, conv_row INTEGER, body BLOB);
"""
INDEXES = """
CREATE INDEX issues_conv ON issues (conv_row);
CREATE INDEX issues_category ON issues (category, conv_row);
CREATE INDEX issues_source ON issues (source, conv_row);
CREATE INDEX issue_body_conv ON issue_body (conv_row);
CREATE INDEX pairs_conv ON pairs (conv_row);
"""
"""The listing tables (`conversations`, `issues`) are narrow so that counting and paging 100k
rows reads a few MB; the records live in the `*_body` tables, read one conversation at a time."""


def issue_source(issue: Issue) -> str:
    """"rule" for an issue found by the timing rules, "judge" for one found by an LLM judge."""
    return "rule" if issue.kind == "timing" else "judge"


def _pack(d: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(d, ensure_ascii=False).encode("utf-8"), 1)


def _unpack(b: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(b))


def _stamp(root: Path) -> str:
    parts = []
    for name in (CONVERSATIONS, ANNOTATIONS, PAIRS):
        p = root / name
        st = p.stat() if p.exists() else None
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}" if st else f"{name}:-")
    return f"v{VERSION};" + ";".join(parts)


@dataclass(frozen=True)
class Row:
    """One line of the conversation list."""

    id: str
    duration: float
    n_issues: int
    categories: str


def build(root: Path, dest: Path) -> None:
    """Write the index of the run `root` to `dest` (through a temporary file)."""
    from duplexalign.manifest import GroupReader

    conv_path = root / CONVERSATIONS
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript(SCHEMA)
    issues = GroupReader(iter_dicts(root / ANNOTATIONS), key=lambda d: d["conversation_id"])
    pairs = GroupReader(iter_dicts(root / PAIRS), key=lambda d: d["conversation_id"])
    for row, d in enumerate(tqdm(iter_dicts(conv_path), desc="review index", unit="conv",
                                 disable=None)):
        conv = Conversation.model_validate(d)
        group = issues.take(conv.id)
        cats = []
        for i in group:
            if "reply_id" not in i:
                raise BadInput("old_annotations", f"{root / ANNOTATIONS} was written before "
                               "reply ids: rerun `duplexalign annotate` on this run")
            issue = Issue.model_validate(i)
            cats.append(issue.category)
            db.execute("INSERT OR REPLACE INTO issues VALUES (?,?,?,?,?)",
                       (issue.id, row, issue.category, issue_source(issue), issue.reply_span[0]))
            db.execute("INSERT OR REPLACE INTO issue_body VALUES (?,?,?)",
                       (issue.id, row, _pack(i)))
        for p in pairs.take(conv.id):
            pair = PreferencePair.model_validate(p)
            db.execute("INSERT OR REPLACE INTO pairs VALUES (?,?,?)", (pair.id, row, _pack(p)))
        db.execute("INSERT INTO conversations VALUES (?,?,?,?,?)",
                   (row, conv.id, conv.duration, len(group), ",".join(sorted(set(cats)))))
        db.execute("INSERT INTO conversation_body VALUES (?,?)", (row, _pack(d)))
    db.executescript(INDEXES)
    left = sum(1 for _ in issues.rest())
    if left:
        log.warning("review: %d issues are not in conversation order or name unknown "
                    "conversations; they are not shown", left)
    db.execute("INSERT INTO meta VALUES ('stamp', ?)", (_stamp(root),))
    db.commit()
    db.close()
    os.replace(tmp, dest)


class RunIndex:
    """Queries over the index of one run (thread-safe: one connection behind a lock).

    Args:
        root: the run directory; the index is (re)built when stale.
    """

    def __init__(self, root: str | Path):
        self.root = RunDir(root, create=False).root
        if not (self.root / CONVERSATIONS).is_file():
            raise BadInput("no_conversations", f"{self.root / CONVERSATIONS} does not exist: "
                           "review needs a run made by `duplexalign ingest` (and `annotate` "
                           "for issues)")
        path = self.root / INDEX
        if self._stale(path):
            log.info("review: indexing %s", self.root)
            build(self.root, path)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TEMP TABLE decided (issue_id TEXT PRIMARY KEY)")
        self._lock = threading.Lock()

    def _stale(self, path: Path) -> bool:
        if not path.exists():
            return True
        try:
            with sqlite3.connect(path) as db:
                row = db.execute("SELECT value FROM meta WHERE key='stamp'").fetchone()
        except sqlite3.DatabaseError:
            return True
        return row is None or row[0] != _stamp(self.root)

    def set_decided(self, issue_ids: Iterable[str]) -> None:
        """Mark these issues as decided by the app's reviewer (adds to the set)."""
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO decided VALUES (?)",
                                 ((i,) for i in issue_ids))

    def _where(self, category: str, source: str, undecided: bool, conv_id: str
               ) -> tuple[str, list[Any]]:
        conds, args = [], []
        if conv_id:
            conds.append("c.id LIKE ? ESCAPE '\\'")
            esc = conv_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{esc}%")
        sub, subargs = [], []
        if category:
            sub.append("i.category = ?")
            subargs.append(category)
        if source:
            sub.append("i.source = ?")
            subargs.append(source)
        if undecided:
            sub.append("i.id NOT IN (SELECT issue_id FROM decided)")
        if sub:
            conds.append("c.row IN (SELECT i.conv_row FROM issues i WHERE "
                         + " AND ".join(sub) + ")")
            args += subargs
        return (" WHERE " + " AND ".join(conds)) if conds else "", args

    def page(self, *, category: str = "", source: str = "", undecided: bool = False,
             conv_id: str = "", offset: int = 0, limit: int = 50) -> tuple[list[Row], int]:
        """One page of the conversation list under the filters, and the total matching."""
        where, args = self._where(category, source, undecided, conv_id)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM conversations c{where}",
                                     args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT c.id, c.duration, c.n_issues, c.categories FROM conversations c{where} "
                "ORDER BY c.row LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [Row(*r) for r in rows], total

    def neighbours(self, conv_id: str) -> tuple[str | None, str | None]:
        """The ids of the conversations before and after `conv_id` in run order."""
        with self._lock:
            row = self._db.execute("SELECT row FROM conversations WHERE id=?",
                                   (conv_id,)).fetchone()
            if row is None:
                return None, None
            prev = self._db.execute("SELECT id FROM conversations WHERE row < ? ORDER BY row DESC "
                                    "LIMIT 1", (row[0],)).fetchone()
            nxt = self._db.execute("SELECT id FROM conversations WHERE row > ? ORDER BY row "
                                   "LIMIT 1", (row[0],)).fetchone()
        return (prev[0] if prev else None), (nxt[0] if nxt else None)

    def conversation(self, conv_id: str) -> Conversation | None:
        """The conversation `conv_id`, or None."""
        with self._lock:
            row = self._db.execute("SELECT b.body FROM conversations c JOIN conversation_body b "
                                   "ON b.row = c.row WHERE c.id=?", (conv_id,)).fetchone()
        return Conversation.model_validate(_unpack(row[0])) if row else None

    def issues(self, conv_id: str) -> list[Issue]:
        """The issues of `conv_id` in time order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT b.body FROM issues i JOIN issue_body b ON b.id = i.id WHERE i.conv_row = "
                "(SELECT row FROM conversations WHERE id=?) ORDER BY i.start, i.id",
                (conv_id,)).fetchall()
        return [Issue.model_validate(_unpack(r[0])) for r in rows]

    def pairs(self, conv_id: str) -> list[PreferencePair]:
        """The pairs of `conv_id`."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM pairs WHERE conv_row = (SELECT row FROM "
                                    "conversations WHERE id=?) ORDER BY id", (conv_id,)).fetchall()
        return [PreferencePair.model_validate(_unpack(r[0])) for r in rows]

    def categories(self) -> list[str]:
        """Issue categories present in the run."""
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT DISTINCT category FROM issues ORDER BY category")]

    def issue_conversation(self, issue_id: str) -> str | None:
        """The conversation of an issue, or None when the issue is unknown."""
        with self._lock:
            row = self._db.execute("SELECT c.id FROM issues i JOIN conversations c ON c.row = "
                                   "i.conv_row WHERE i.id=?", (issue_id,)).fetchone()
        return row[0] if row else None

    def pair_conversation(self, pair_id: str) -> str | None:
        """The conversation of a pair, or None when the pair is unknown."""
        with self._lock:
            row = self._db.execute("SELECT c.id FROM pairs p JOIN conversations c ON c.row = "
                                   "p.conv_row WHERE p.id=?", (pair_id,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
