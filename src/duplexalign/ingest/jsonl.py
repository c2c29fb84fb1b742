"""Reader of generic JSON-lines logs (registered as `jsonl`): one conversation per line.

Owns the simplest input format, for logs written by any serving stack. Each line is an object:

    {"id": "c1", "duration": 12.0,
     "words": {"model": [["hi", 0.1, 0.3], ...], "user": [{"text": "yo", "start": 1.0, "end": 1.2}]},
     "audio": {"model": "m.wav", "user": "u.wav"} | "stereo.wav",   (optional)
     "meta": {...}}                                                  (optional)

Words are `[text, start, end]` triples or `{"text", "start", "end"}` objects, in seconds. `audio` is
either one stereo file (channel 0 = model, channel 1 = user) or a mono file per channel; relative paths
are relative to the JSONL file's folder and must stay inside the input folder (`files.confine`).
`words` keys other than `model` and `user` quarantine the line (`unknown_channel`). `duration` may be
left out when audio is given (the audio's length is used) or else defaults to the last word's end.
Files may be gzip-compressed (`.jsonl.gz`); a file damaged mid-stream keeps every line before the
damage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from duplexalign.errors import BadInput
from duplexalign.ingest.base import (
    READERS,
    ChannelSource,
    Found,
    IngestConfig,
    ReadResult,
    Rejected,
    guarded,
)
from duplexalign.ingest.files import confine, confined_files, input_root, read_lines
from duplexalign.ingest.validate import make_words, parse_json_bytes, parse_time
from duplexalign.records import CHANNELS, ChannelWords, Conversation, Source, Word

NAME = "jsonl"


def input_files(input_path: Path) -> list[Path]:
    """`input_path` itself, or every `*.jsonl` / `*.jsonl.gz` file in a folder (sorted)."""
    if input_path.is_dir():
        return sorted([*input_path.glob("*.jsonl"), *input_path.glob("*.jsonl.gz")])
    return [input_path] if input_path.is_file() else []


@READERS.register(NAME)
def read(input_path: Path, cfg: IngestConfig, done: Collection[str] = ()) -> Iterator[ReadResult]:
    """Yield one `Conversation`, `Found` or `Rejected` per non-empty line."""
    input_path = Path(input_path)
    root = input_root(input_path)
    files = input_files(input_path)
    if not files:
        yield Rejected(str(input_path), "input_missing", "no .jsonl file found")
        return
    if input_path.is_dir():
        files, refused = confined_files(files, root, cfg)
        yield from refused
    for path in files:
        lineno = 0
        try:
            for lineno, raw in enumerate(read_lines(path), 1):
                if raw.strip():
                    item = f"{path}:{lineno}"
                    yield guarded(item, parse_line, raw, path, item, cfg, root)
        except BadInput as e:  # the lines before the damage are kept; the rest is quarantined
            yield Rejected(f"{path}:{lineno + 1}", e.reason, e.detail)


def parse_line(raw: bytes, path: Path, item: str, cfg: IngestConfig, root: Path | None = None
               ) -> Conversation | Found:
    """Parse one JSONL line into a conversation (`Found` when it names audio files).

    Args:
        raw: the line's bytes.
        path: the JSONL file (relative audio paths are relative to its folder).
        item: the line's reference for quarantine records.
        cfg: ingest options.
        root: the input root audio paths must stay in (default: the file's folder).

    Raises:
        BadInput: with the reason key of the first problem.
    """
    if len(raw) > cfg.max_file_bytes:
        raise BadInput("file_too_large", f"line of {len(raw)} bytes")
    d = parse_json_bytes(raw, item)
    if not isinstance(d, dict):
        raise BadInput("bad_schema", "a line must be a JSON object")
    conv_id = d.get("id")
    if not isinstance(conv_id, str) or not conv_id.strip():
        raise BadInput("bad_schema", '"id" must be a non-empty string')
    raw_words = d.get("words")
    if not isinstance(raw_words, dict):
        raise BadInput("bad_schema", '"words" must be an object {"model": [...], "user": [...]}')
    unknown = sorted(str(k) for k in raw_words if k not in CHANNELS)
    if unknown:
        raise BadInput("unknown_channel", f"words keys {unknown!r:.80} are not channels (model, "
                                          "user): rename them in the log")
    words = ChannelWords(**{ch: _words(raw_words.get(ch, []), ch) for ch in CHANNELS})
    sources = _audio(d.get("audio"), path.parent, root or input_root(path), cfg)
    if d.get("duration") is not None:
        duration = parse_time(d["duration"], "duration")
        if duration <= 0:
            raise BadInput("bad_duration", f"duration {duration}")
    elif sources:
        duration = 1e-3  # replaced by the audio's length in the stage
    else:
        duration = max((w.end for ch in CHANNELS for w in words.of(ch)), default=0.0)
        if duration <= 0:
            raise BadInput("bad_duration", "no duration, no audio and no timed words")
    meta = d.get("meta", {})
    if not isinstance(meta, dict):
        raise BadInput("bad_schema", '"meta" must be an object')
    conv = Conversation(id=conv_id, words=words, duration=duration, meta=meta,
                        source=Source(reader=NAME, path=item, digest=hashlib.sha256(raw).hexdigest()))
    return Found(conv, sources, item) if sources else conv


def _words(raw: Any, ch: str) -> list[Word]:
    if not isinstance(raw, list):
        raise BadInput("bad_schema", f"words.{ch} must be a list")
    def rows():
        for i, w in enumerate(raw):
            if isinstance(w, list) and len(w) == 3:
                yield w
            elif isinstance(w, dict) and {"text", "start", "end"} <= w.keys():
                yield w["text"], w["start"], w["end"]
            else:
                raise BadInput("bad_schema", f"words.{ch}[{i}] must be [text, start, end] or "
                                             "an object")

    return make_words(rows(), lambda i: f"words.{ch}[{i}]")


def _audio(raw: Any, folder: Path, root: Path, cfg: IngestConfig) -> dict[str, ChannelSource]:
    def path(p: Any, what: str) -> Path:
        if not isinstance(p, str) or not p:
            raise BadInput("bad_schema", f"{what} must be a path string")
        return confine(Path(p) if Path(p).is_absolute() else folder / p, root, cfg, what)

    if raw is None:
        return {}
    if isinstance(raw, str):
        stereo = path(raw, "audio")
        return {"model": ChannelSource(stereo, 0), "user": ChannelSource(stereo, 1)}
    if isinstance(raw, dict) and set(raw) <= set(CHANNELS):
        return {ch: ChannelSource(path(p, f"audio.{ch}")) for ch, p in raw.items() if p is not None}
    raise BadInput("bad_schema", '"audio" must be a stereo path or {"model": path, "user": path}')
