"""Safe access to what an ingest input names: confined paths, no special files, salvaged gzip lines.

Owns the rules every reader applies before it opens a file that the input *names* or that a folder
walk finds (a moshi-finetune index line's `path`, a JSONL `audio` field, an FD-Bench side file): the
path is resolved, symlinks included, and must lie inside the input root (`input_root`) unless
`ingest.allow_outside_paths` is set (else `path_outside_input`); nothing under /dev, /proc or /sys and
no FIFO, socket or device is ever opened (`special_file`). Folder walks never descend into a symlinked
folder and report each one they pass, so nothing is skipped uncounted. Line reading decompresses gzip
as a stream and, at the first damage, still yields every complete line before it. It knows nothing
about transcripts or audio formats.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from duplexalign.errors import BadInput
from duplexalign.ingest.base import IngestConfig, Rejected

SPECIAL_ROOTS = (Path("/dev"), Path("/proc"), Path("/sys"))
"""Pseudo file systems whose files are never opened, wherever a path points."""
_CHUNK = 1 << 16  # compressed bytes read at a time
_OUT_MAX = 1 << 22  # decompressed bytes produced per call (bounds memory on a gzip bomb)


def input_root(input_path: Path) -> Path:
    """The folder that paths named by the input must stay in: the input folder itself, or the
    folder holding an input file (resolved)."""
    p = Path(input_path)
    return (p if p.is_dir() else p.parent).resolve()


def confine(path: Path, root: Path, cfg: IngestConfig, what: str = "file") -> Path:
    """`path` resolved (symlinks followed) once it is safe to open; a missing path is returned too
    (its reader reports it with its own reason).

    Args:
        path: a path named by the input (absolute, or already joined to its base folder).
        root: the resolved input root (`input_root`).
        cfg: ingest options (`allow_outside_paths`).
        what: what the path is, for the detail text (e.g. "audio", "metadata.json").

    Raises:
        BadInput: "path_outside_input", "special_file", or "bad_schema" for a path that is not a
            valid file name (NUL byte, unpaired surrogate, symlink loop).
    """
    try:
        real = Path(path).resolve()
        st = os.stat(real) if os.path.lexists(real) else None
    except (OSError, RuntimeError, ValueError, UnicodeError) as e:
        raise BadInput("bad_path", f"{what} path {str(path)!r:.120} cannot be used: "
                                     f"{type(e).__name__}") from None
    for special in SPECIAL_ROOTS:
        if real.is_relative_to(special):
            raise BadInput("special_file", f"{what} {path} resolves to {real}, under {special}")
    if not cfg.allow_outside_paths and not real.is_relative_to(root):
        raise BadInput("path_outside_input",
                       f"{what} {path} resolves to {real}, outside the input folder {root} "
                       "(set ingest.allow_outside_paths=true to allow it)")
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise BadInput("special_file", f"{what} {path} is not a regular file (FIFO, socket or "
                                       "device)")
    return real


def confined_files(paths: list[Path], root: Path, cfg: IngestConfig
                   ) -> tuple[list[Path], list[Rejected]]:
    """Split input files found by a listing (e.g. `*.jsonl` in the input folder) into the confined
    ones and a `Rejected` for each that may not be opened."""
    ok: list[Path] = []
    bad: list[Rejected] = []
    for p in paths:
        try:
            ok.append(confine(p, root, cfg, "input file"))
        except BadInput as e:
            bad.append(Rejected(str(p), e.reason, e.detail))
    return ok, bad


def walk(root: Path, cfg: IngestConfig) -> Iterator[tuple[Path, list[str]] | Rejected]:
    """Walk folder `root` in sorted order without following symlinked folders.

    Yields:
        `(folder, sorted file names)` for every folder reached, and one `Rejected` per symlinked
        folder passed ("path_outside_input" when it points outside `root` and
        `allow_outside_paths` is off, else "symlinked_folder") and per unreadable folder
        ("input_unreadable").
    """
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=errors.append):
        while errors:
            e = errors.pop()
            yield Rejected(str(e.filename), "input_unreadable", f"cannot list the folder: {e}")
        dirs.sort()
        for name in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            dirs.remove(name)
            link = Path(folder, name)
            real = link.resolve()
            if not real.is_relative_to(root.resolve()) and not cfg.allow_outside_paths:
                yield Rejected(str(link), "path_outside_input",
                               f"symlinked folder pointing to {real}, outside the input folder")
            else:
                yield Rejected(str(link), "symlinked_folder",
                               f"symlinked folder (to {real}) not followed: copy or move it in")
        yield Path(folder), sorted(files)
    while errors:
        e = errors.pop()
        yield Rejected(str(e.filename), "input_unreadable", f"cannot list the folder: {e}")


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines of a text file, or of a gzip file (name ending in `.gz`) decompressed as a stream.

    Raises:
        BadInput: "input_unreadable" at the first damage (truncation, corrupt data, a read error),
            after every complete line before it has been yielded; the damaged line and the rest
            of the file are lost.
    """
    try:
        with open(path, "rb") as f:
            if path.name.endswith(".gz"):
                yield from _split_lines(_inflate(f, path))
            else:
                yield from f
    except OSError as e:
        raise BadInput("input_unreadable", f"{path}: {type(e).__name__}: {e}") from None


def _split_lines(pieces: Iterator[bytes]) -> Iterator[bytes]:
    parts: list[bytes] = []
    for piece in pieces:
        start = 0
        while (end := piece.find(b"\n", start)) >= 0:
            parts.append(piece[start:end + 1])
            yield b"".join(parts)
            parts, start = [], end + 1
        if start < len(piece):
            parts.append(piece[start:])
    if parts:
        yield b"".join(parts)


def _inflate(f: BinaryIO, path: Path) -> Iterator[bytes]:
    """Decompressed pieces of the gzip stream `f` (several members allowed, zero padding after the
    last one ignored); at damage, yields what decompresses up to it, then raises BadInput."""
    d = zlib.decompressobj(wbits=31)
    data = b""
    while True:
        data = data or f.read(_CHUNK)
        if not data:
            break
        if d.eof:  # the previous member ended: another member follows, or zero padding
            if not data.strip(b"\0"):
                data = b""
                continue
            d = zlib.decompressobj(wbits=31)
        while data:
            before = d.copy()
            try:
                out = d.decompress(data, _OUT_MAX)
            except zlib.error as e:
                yield from _salvage(before, data)
                raise BadInput("input_unreadable", f"{path}: corrupt gzip data ({e})") from None
            yield out
            if d.eof:
                data = d.unused_data
                break
            data = d.unconsumed_tail
    if not d.eof:
        raise BadInput("input_unreadable", f"{path}: gzip stream ends early (truncated file)")


def _salvage(d, data: bytes) -> Iterator[bytes]:
    """Feed `data` byte by byte to decompressor `d` and yield its output up to the first error."""
    for i in range(len(data)):
        try:
            out = d.decompress(data[i:i + 1])
        except zlib.error:
            return
        if out:
            yield out
        if d.eof:
            return
