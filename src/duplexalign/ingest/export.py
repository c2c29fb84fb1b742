"""Export of conversations back to the moshi-finetune dataset layout.

Owns the writer side of the `moshi-finetune` format: for each conversation a stereo 24 kHz wav
(channel 0 = model, channel 1 = user) under `OUT/audio/<safe id>.wav`, a sibling `.json` with
`"alignments": [[word, [start, end], speaker], ...]` sorted by start (model words labelled
`SPEAKER_MAIN`, user words `SPEAKER_1`, both in the default speaker map), and `OUT/index.jsonl` with
one `{"path", "duration"}` per wav (paths relative to OUT). When the user's audio was not carried
forward, the user channel is silence and the `.json` says so (`"duplexalign": {"user_audio":
"silence"}`). Later stages (pairs export) call `export_moshi_finetune`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from duplexalign.ingest.wav import to_24k
from duplexalign.records import Conversation
from duplexalign.runs import RunDir, atomic_write_text
from duplexalign.speech.audio import write_audio
from duplexalign.text import safe_id
from duplexalign.timebase import SAMPLE_RATE

SPEAKER_LABELS = {"model": "SPEAKER_MAIN", "user": "SPEAKER_1"}
logger = logging.getLogger(__name__)


def export_moshi_finetune(conversations: Iterable[Conversation], run_dir: str | Path,
                          out_dir: str | Path) -> Counter:
    """Write `conversations` in the moshi-finetune layout under `out_dir`.

    Args:
        conversations: records whose `audio` paths are relative to `run_dir` (or absolute).
        run_dir: the run directory the audio paths are relative to.
        out_dir: destination folder (gets `index.jsonl` and `audio/`).

    Returns:
        Counts: `exported`, `user_silence` (user channel written as silence) and
        `skipped/no_model_audio` (conversations without model audio cannot be exported).
    """
    rd, out = RunDir(run_dir), Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    index: list[str] = []
    for conv in conversations:
        if conv.audio.model is None:
            counts["skipped/no_model_audio"] += 1
            logger.warning("%s has no model audio: not exported", conv.id)
            continue
        model = _mono(rd.resolve(conv.audio.model))
        user = _mono(rd.resolve(conv.audio.user)) if conv.audio.user else None
        n = max(len(model), len(user) if user is not None else 0)
        stereo = np.zeros((n, 2), dtype=np.float32)
        stereo[: len(model), 0] = model
        if user is not None:
            stereo[: len(user), 1] = user
        else:
            counts["user_silence"] += 1
        rel = f"audio/{safe_id(conv.id)}.wav"
        write_audio(out / rel, stereo.T, SAMPLE_RATE)
        atomic_write_text((out / rel).with_suffix(".json"), json.dumps({
            "alignments": alignments(conv),
            "duplexalign": {"conversation_id": conv.id,
                            "user_audio": "original" if user is not None else "silence"},
        }, ensure_ascii=False))
        index.append(json.dumps({"path": rel, "duration": n / SAMPLE_RATE}))
        counts["exported"] += 1
    atomic_write_text(out / "index.jsonl", "".join(line + "\n" for line in index))
    return counts


def alignments(conv: Conversation) -> list[list]:
    """`[[word, [start, end], speaker], ...]` of both channels, sorted by start time."""
    rows = [[w.text, [w.start, w.end], SPEAKER_LABELS[ch]]
            for ch in ("model", "user") for w in conv.words.of(ch)]
    return sorted(rows, key=lambda r: r[1][0])


def _mono(path: Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return to_24k(data.mean(axis=1), sr)
