"""Re-validation of a finished ingest run (`duplexalign validate DIR`).

Owns checking what an ingest run left on disk: every record of `conversations.jsonl.gz` must parse,
pass `validate.check_conversation` with the run's own config (from `provenance.json`), and point at
readable mono 24 kHz channel wavs whose length matches its duration. Problems are reported with the
reason keys of `validate.REASONS`; nothing is modified.
"""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf
from pydantic import ValidationError

from duplexalign.ingest.base import IngestConfig
from duplexalign.ingest.validate import Problem, check_conversation
from duplexalign.manifest import iter_dicts
from duplexalign.records import CHANNELS, Conversation
from duplexalign.runs import RunDir
from duplexalign.timebase import FRAME_SECONDS, SAMPLE_RATE


def run_config(rd: RunDir) -> IngestConfig:
    """The ingest config recorded in the run's provenance (defaults if absent)."""
    p = rd.path("provenance.json")
    cfg = json.loads(p.read_text()).get("ingest", {}).get("config") if p.exists() else None
    return IngestConfig.model_validate(cfg) if cfg else IngestConfig()


def recheck_run(run_dir: str | Path) -> list[tuple[str, Problem]]:
    """Every problem of every conversation of an ingest run, as (conversation id, problem)."""
    rd = RunDir(run_dir)
    cfg = run_config(rd)
    out: list[tuple[str, Problem]] = []
    for i, d in enumerate(iter_dicts(rd.path("conversations.jsonl.gz"))):
        try:
            conv = Conversation.model_validate(d)
        except ValidationError as e:
            out.append((str(d.get("id", f"record {i}")), Problem("bad_schema", str(e)[:300])))
            continue
        probs = check_conversation(conv, cfg)
        probs += _audio_problems(conv, rd)
        out += [(conv.id, p) for p in probs]
    return out


def _audio_problems(conv: Conversation, rd: RunDir) -> list[Problem]:
    probs = []
    for ch in CHANNELS:
        rel = getattr(conv.audio, ch)
        if rel is None:
            continue
        path = rd.resolve(rel)
        if not path.is_file():
            probs.append(Problem("audio_missing", f"{ch}: {path}"))
            continue
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as e:
            probs.append(Problem("audio_unreadable", f"{ch}: {path}: {e}"))
            continue
        if info.samplerate != SAMPLE_RATE or info.channels != 1:
            probs.append(Problem("audio_format", f"{ch}: {info.channels} ch at {info.samplerate} Hz"))
        elif info.frames / SAMPLE_RATE > conv.duration + FRAME_SECONDS:
            probs.append(Problem("audio_format", f"{ch}: {info.frames / SAMPLE_RATE:.2f} s of audio "
                                                 f"but duration {conv.duration:.2f} s"))
    return probs
