"""Reader of the Full-Duplex-Bench sample layout (registered as `fdb`).

Owns parsing of FD-Bench v1/v1.5 sample folders: `input.wav` is the user stream, `output.wav` the
model's time-synchronous reply stream, `output.json` the model's words
(`{"text", "chunks": [{"text", "timestamp": [start, end]}]}`). User words come from `input.json` (same
chunk format) or the two-speaker `transcription.json` (`[{"speaker", "item": [chunks]}]`, merged and
sorted); a channel with audio but no transcript is transcribed with the configured ASR backend
(FDB's pause and interruption samples hold the user only in `input.wav`); without `input.wav`, an
interruption sample's user words are the cut-in text of `interrupt.json`, spread over its span. Task
side files (`pause.json`, `turn_taking.json`, `interrupt.json`, `metadata.json`, `rating.json`) are
kept in `meta["fdb"]`. A sample folder is any folder holding `output.json`, `output.wav` or
`input.wav`; its id is its path relative to the input folder. Symlinked folders are not followed
(each is quarantined, so it is counted), and every file is opened through `files.confine`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from duplexalign.errors import BadInput
from duplexalign.fdb_rules import parse_chunks
from duplexalign.ingest.audio import make_asr, transcribe
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
from duplexalign.ingest.files import confine, input_root, walk
from duplexalign.ingest.validate import make_word, read_json
from duplexalign.ingest.wav import load_channels
from duplexalign.records import CHANNELS, Channel, ChannelWords, Conversation, Source, Word
from duplexalign.speech.base import ASR

NAME = "fdb"
MARKERS = ("output.json", "output.wav", "input.wav")
SIDE_FILES = ("pause.json", "turn_taking.json", "interrupt.json", "metadata.json", "rating.json")
WAVS: dict[Channel, str] = {"model": "output.wav", "user": "input.wav"}


def sample_dirs(input_path: Path, cfg: IngestConfig) -> tuple[list[Path], list[Rejected]]:
    """Every sample folder at or below `input_path` (sorted), and a `Rejected` for every symlinked
    or unreadable folder the walk did not enter."""
    if not input_path.is_dir():
        return [], []
    found: list[Path] = []
    skipped: list[Rejected] = []
    for entry in walk(input_path, cfg):
        if isinstance(entry, Rejected):
            skipped.append(entry)
        elif any(m in entry[1] for m in MARKERS):
            found.append(entry[0])
    return sorted(found), skipped


@READERS.register(NAME)
def read(input_path: Path, cfg: IngestConfig, done: Collection[str] = ()) -> Iterator[ReadResult]:
    """Yield one `Found` or `Rejected` per sample folder (ids in `done` are skipped before any
    ASR), and a `Rejected` per symlinked folder not followed."""
    input_path = Path(input_path)
    dirs, skipped = sample_dirs(input_path, cfg)
    yield from skipped
    if not dirs:
        yield Rejected(str(input_path), "input_missing", f"no folder holding one of {MARKERS}")
        return
    root = input_root(input_path)
    asr: list[ASR] = []  # built on first need, once
    for d in dirs:
        conv_id = str(d.relative_to(input_path)) if d != input_path else d.name
        if conv_id in done:
            yield Skipped(str(d), conv_id)
        else:
            yield guarded(str(d), _sample, d, root, conv_id, cfg, asr)


def _sample(folder: Path, root: Path, conv_id: str, cfg: IngestConfig, asr: list[ASR]) -> Found:
    names = ("output.json", "input.json", "transcription.json", *WAVS.values(), *SIDE_FILES)
    f = {n: confine(folder / n, root, cfg, n) for n in names}  # before anything is opened
    words: dict[str, list[Word]] = {}
    meta: dict[str, Any] = {}
    words["model"] = _chunks(read_json(f["output.json"], cfg), "output.json") \
        if f["output.json"].is_file() else None
    if f["input.json"].is_file():
        words["user"] = _chunks(read_json(f["input.json"], cfg), "input.json")
    elif f["transcription.json"].is_file():
        words["user"], meta["user_speakers"] = _transcription(
            read_json(f["transcription.json"], cfg))
    else:
        words["user"] = None
    sources = {ch: ChannelSource(f[name]) for ch, name in WAVS.items() if f[name].is_file()}
    fdb = {n.removesuffix(".json"): read_json(f[n], cfg) for n in SIDE_FILES if f[n].is_file()}
    if words["user"] is None and "user" not in sources and "interrupt" in fdb:
        words["user"] = _interrupt_words(fdb["interrupt"])
        meta["user_words_from"] = "interrupt.json"
    for ch in CHANNELS:
        if words[ch] is None:
            if ch in sources:
                if not asr:
                    asr.append(make_asr(cfg))
                wav = load_channels({ch: sources[ch]}, cfg.max_duration)[0][ch]
                words[ch] = transcribe(asr[0], wav, f"{folder / WAVS[ch]}")
                meta[f"{ch}_words_from"] = "asr"
            else:
                words[ch] = []
    if fdb:
        meta["fdb"] = fdb
    end = max((w.end for ch in CHANNELS for w in words[ch]), default=0.0)
    digest = hashlib.sha256()
    for n in ("output.json", "input.json", "transcription.json", *WAVS.values()):
        if f[n].is_file():
            digest.update(f[n].read_bytes())
    conv = Conversation(id=conv_id, words=ChannelWords(**words), duration=max(end, 1e-3),
                        source=Source(reader=NAME, path=str(folder), digest=digest.hexdigest()),
                        meta=meta)
    # Both wavs belong to the layout: the stage reports missing ones (or, with require_audio=False,
    # keeps the sample words-only with the last word's end as its duration).
    return Found(conv, {ch: ChannelSource(f[name]) for ch, name in WAVS.items()}, str(folder))


def _chunks(doc: Any, what: str) -> list[Word]:
    # FD-Bench: a missing end means "use the start" (`fdb_rules.parse_chunks` keeps it null)
    return [make_word(c.text, c.start, c.start if c.end is None else c.end, f"{what} chunk {i}")
            for i, c in enumerate(parse_chunks(doc, what))]


def _interrupt_words(doc: Any) -> list[Word]:
    """The user's cut-in from `interrupt.json` (`[{"interrupt": text, "timestamp": [s, e]}]`): its
    words spread evenly over the span (the file times the cut-in, not its words)."""
    try:
        text, (start, end) = str(doc[0]["interrupt"]), doc[0]["timestamp"]
    except (KeyError, IndexError, TypeError, ValueError):
        raise BadInput("bad_schema", 'interrupt.json needs [{"interrupt", "timestamp": [s, e]}]'
                       ) from None
    toks = text.split()
    step = (float(end) - float(start)) / max(len(toks), 1)
    return [make_word(t, float(start) + i * step, float(start) + (i + 1) * step,
                      f"interrupt.json word {i}") for i, t in enumerate(toks)]


def _transcription(doc: Any) -> tuple[list[Word], list[Any]]:
    if not isinstance(doc, list):
        raise BadInput("bad_schema", "transcription.json must be a list of speaker turns")
    words: list[Word] = []
    speakers: list[Any] = []
    for i, turn in enumerate(doc):
        if not isinstance(turn, dict) or not isinstance(turn.get("item"), list):
            raise BadInput("bad_schema", f'transcription.json turn {i} needs an "item" list')
        speakers.append(turn.get("speaker"))
        words += _chunks({"chunks": turn["item"]}, f"transcription.json turn {i}")
    return sorted(words, key=lambda w: w.start), speakers
