"""Reader of the moshi-finetune dataset layout (registered as `moshi-finetune`).

Owns parsing of a JSONL index of stereo wavs (`{"path": ..., "duration": ...}` per line, paths
relative to the index file's folder) with a sibling `.json` per wav holding
`"alignments": [[word, [start, end], speaker], ...]`. Channel 0 of the wav is the model, channel 1 the
user. As in moshi-finetune, the main speaker (`SPEAKER_MAIN`) is the model and every other label is
the other party (`IngestConfig.default_channel`), unless `IngestConfig.speaker_map` names the label.
Paths must stay inside the input folder (`files.confine`). The conversation id is the wav's path
relative to the index folder, without extension. The alignment file's `meta` object (scenario
ids, ground truth of sandbox logs, ...) and its `text_conditions` are kept in `Conversation.meta`.
Audio is not decoded here: the stage loads it through the returned `Found.audio`.
"""

from __future__ import annotations

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
    Skipped,
    guarded,
)
from duplexalign.ingest.files import confine, confined_files, input_root, read_lines
from duplexalign.ingest.validate import make_words, parse_json_bytes, parse_time, read_json
from duplexalign.records import CHANNELS, ChannelWords, Conversation, Source
from duplexalign.runs import sha256_file

NAME = "moshi-finetune"


def index_files(input_path: Path) -> list[Path]:
    """The index files of `input_path`: the file itself, or every `*.jsonl` in a folder."""
    if input_path.is_dir():
        return sorted(input_path.glob("*.jsonl"))
    return [input_path] if input_path.is_file() else []


@READERS.register(NAME)
def read(input_path: Path, cfg: IngestConfig, done: Collection[str] = ()) -> Iterator[ReadResult]:
    """Yield one `Found`, `Rejected` or `Skipped` (id in `done`) per line of the index file(s) at
    `input_path`."""
    input_path = Path(input_path)
    root = input_root(input_path)
    files = index_files(input_path)
    if not files:
        yield Rejected(str(input_path), "input_missing", "no .jsonl index file found")
        return
    if input_path.is_dir():
        files, refused = confined_files(files, root, cfg)
        yield from refused
    for index in files:
        lineno = 0
        try:
            for lineno, raw in enumerate(read_lines(index), 1):
                if raw.strip():
                    item = f"{index}:{lineno}"
                    yield guarded(item, _entry, index, root, raw, item, cfg, done)
        except BadInput as e:
            yield Rejected(f"{index}:{lineno + 1}", e.reason, e.detail)


def _entry(index: Path, root: Path, raw: bytes, item: str, cfg: IngestConfig,
           done: Collection[str]) -> Found | Skipped:
    if len(raw) > cfg.max_file_bytes:
        raise BadInput("file_too_large", f"index line of {len(raw)} bytes")
    entry = parse_json_bytes(raw, item)
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise BadInput("bad_schema", 'index line must be an object with a "path" string')
    rel = entry["path"]
    named = Path(rel) if Path(rel).is_absolute() else index.parent / rel
    wav = confine(named, root, cfg, "audio")
    duration = parse_time(entry.get("duration"), "duration") if "duration" in entry else None
    if duration is not None and duration <= 0:
        raise BadInput("bad_duration", f"duration {duration}")
    conv_id = str(Path(rel).with_suffix("")) if not Path(rel).is_absolute() else Path(rel).stem
    if conv_id in done:
        return Skipped(item, conv_id)  # written by an earlier run: no reading or hashing
    doc = read_json(confine(named.with_suffix(".json"), root, cfg, "alignment file"), cfg)
    words = parse_alignments(doc, cfg)
    if duration is None:
        duration = max((w.end for ch in CHANNELS for w in words.of(ch)), default=0.0) or 1e-3
    digest = sha256_file(wav) if wav.is_file() else ""
    conv = Conversation(
        id=conv_id, words=words, duration=duration,
        source=Source(reader=NAME, path=str(wav), digest=digest),
        meta=_meta(doc),
    )
    sources = {"model": ChannelSource(wav, 0), "user": ChannelSource(wav, 1)}
    return Found(conversation=conv, audio=sources, item=item)


def parse_alignments(doc: Any, cfg: IngestConfig) -> ChannelWords:
    """Split a moshi-finetune alignment document into the two channels' words.

    Raises:
        BadInput: "bad_schema" for a malformed entry (or a label that is not a string),
            "unknown_speaker" for a label missing from `speaker_map` when `default_channel` is
            None, or a time reason from `make_word`.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("alignments"), list):
        raise BadInput("bad_schema", 'alignment file needs an "alignments" list')
    rows: dict[str, list[tuple[Any, Any, Any]]] = {"model": [], "user": []}
    index: dict[str, list[int]] = {"model": [], "user": []}
    for i, a in enumerate(doc["alignments"]):
        if not (isinstance(a, list) and len(a) == 3 and isinstance(a[1], list) and len(a[1]) == 2):
            raise BadInput("bad_schema", f"alignment {i} must be [word, [start, end], speaker]")
        label = a[2]
        if not isinstance(label, str):
            raise BadInput("bad_schema", f"alignment {i}: speaker label {label!r:.40} must be a "
                                         "string")
        ch = cfg.speaker_map.get(label, cfg.default_channel)
        if ch not in rows:
            raise BadInput("unknown_speaker", f"alignment {i}: speaker {label!r:.40} is not in "
                                              "speaker_map and ingest.default_channel is null")
        rows[ch].append((a[0], a[1][0], a[1][1]))
        index[ch].append(i)
    return ChannelWords(**{ch: make_words(rows[ch], lambda k, ch=ch: f"alignment {index[ch][k]}")
                           for ch in ("model", "user")})


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    """The conversation meta: the document's `meta` object plus its `text_conditions`."""
    meta = dict(doc["meta"]) if isinstance(doc.get("meta"), dict) else {}
    tc = doc.get("text_conditions")
    if isinstance(tc, dict):
        meta["text_conditions"] = tc
    return meta
