"""`duplexalign evaluate --write-fdb DIR`: our timing rollouts in Full-Duplex-Bench's layout.

Owns turning a finished evaluate run's `timing` samples (`RUN/timing/samples.jsonl` and the
two-channel wavs under `RUN/timing/audio/`) into FDB sample folders that FDB's own scripts read
unchanged: `input.wav` (the user channel) and `output.wav` (the model's), mono 16 kHz PCM like FDB's
examples (FDB's backchannel VAD assumes 16 kHz), `output.json` (the model's words in FDB's chunk
format, taken from its text stream, not from ASR of its audio), and the task side file. Probe kinds
map to FDB tasks: `pause` -> `synthetic_pause_handling` (`pause.json`; the clip is cut at the end of
the user's turn, as FDB's pause clips are), `turn_end` -> `synthetic_smooth_turn_taking`
(`turn_taking.json`, whose first timestamp is the user's turn end), `barge_in` ->
`synthetic_user_interruption` (`interrupt.json` with the question as context, the cut-in text and
its span; `output.json` keeps the words after the cut-in, as FDB's cropped ASR does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from duplexalign.errors import BadInput
from duplexalign.fdb_rules import VAD_RATE

TASK_DIRS = {"pause": "synthetic_pause_handling", "turn_end": "synthetic_smooth_turn_taking",
             "barge_in": "synthetic_user_interruption"}


def chunks_doc(words: list[dict[str, Any]]) -> dict[str, Any]:
    """FDB's transcript document of timed words ({"text", "start", "end"} dicts)."""
    return {"text": " ".join(w["text"] for w in words),
            "chunks": [{"text": w["text"], "timestamp": [w["start"], w["end"]]} for w in words]}


def sample_files(rec: dict[str, Any]) -> tuple[str, float | None, dict[str, Any],
                                                list[dict[str, Any]]] | None:
    """(task folder, clip end or None, side files, model words) of one timing sample record, or
    None for a record that is not an FDB-like probe."""
    meta = rec.get("meta", {})
    kind = meta.get("probe")
    if kind not in TASK_DIRS:
        return None
    model = rec["words"]["model"]
    ends, starts = meta.get("turn_ends") or [], meta.get("turn_starts") or []
    if kind == "pause":
        end = ends[0] if ends else max((w["end"] for w in rec["words"]["user"]), default=None)
        side = {"pause.json": [{"text": "[PAUSE]", "timestamp": list(p)}
                               for p in meta.get("pauses", [])]}
        words = [w for w in model if end is None or w["start"] < end]
        return TASK_DIRS[kind], end, side, words
    if kind == "turn_end":
        if not ends:
            return None
        side = {"turn_taking.json": [{"text": "[TURN-TAKING]", "timestamp": [ends[0], ends[0]]}]}
        return TASK_DIRS[kind], None, side, model
    if len(ends) < 2 or len(starts) < 2:
        return None
    cut = (starts[1], ends[1])
    user_words = [w for w in rec["words"]["user"] if cut[0] <= w["start"] < cut[1]]
    side = {"interrupt.json": [{"context": meta.get("question", ""),
                                "interrupt": " ".join(w["text"] for w in user_words),
                                "timestamp": list(cut)}]}
    return TASK_DIRS[kind], None, side, [w for w in model if w["start"] >= cut[1]]


def write_fdb(run_dir: str | Path, fdb_dir: str | Path, task: str = "timing") -> dict[str, int]:
    """Write the `task` samples of the evaluate run in `run_dir` as FDB folders under `fdb_dir`.

    Returns:
        Samples written per FDB task folder, plus `skipped` (no audio, or not a probe).

    Raises:
        BadInput: "input_missing" when the run has no `<task>/samples.jsonl`.
    """
    from duplexalign.speech.audio import read_audio, write_audio

    run_dir, fdb_dir = Path(run_dir), Path(fdb_dir)
    path = run_dir / task / "samples.jsonl"
    if not path.is_file():
        raise BadInput("input_missing", f"{path} not found: run `duplexalign evaluate` with the "
                       f"{task} task first (with write_audio on)")
    counts: dict[str, int] = {"skipped": 0}
    index: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        made = sample_files(rec)
        if made is None or not rec.get("audio"):
            counts["skipped"] += 1
            continue
        folder_name, end, side, words = made
        stereo = read_audio(run_dir / rec["audio"], sample_rate=VAD_RATE)  # [2, S]: model, user
        stereo = np.atleast_2d(stereo)
        if stereo.shape[0] < 2:
            counts["skipped"] += 1
            continue
        if end is not None:
            stereo = stereo[:, : int(round(end * VAD_RATE))]
        index[folder_name] = index.get(folder_name, 0) + 1
        out = fdb_dir / folder_name / str(index[folder_name])
        out.mkdir(parents=True, exist_ok=True)
        write_audio(out / "output.wav", stereo[0], VAD_RATE)
        write_audio(out / "input.wav", stereo[1], VAD_RATE)
        (out / "output.json").write_text(json.dumps(chunks_doc(words), indent=1), "utf-8")
        for name, doc in side.items():
            (out / name).write_text(json.dumps(doc), "utf-8")
        (out / "sample_id.txt").write_text(rec["id"] + "\n", "utf-8")
        counts[folder_name] = counts.get(folder_name, 0) + 1
    return counts
