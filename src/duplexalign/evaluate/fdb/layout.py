"""Reading a folder in Full-Duplex-Bench's layout: sample folders, their task, transcripts, audio.

Owns finding the sample folders under a root (any folder holding `output.wav` or `output.json`,
symlinks not followed), deciding each one's FDB task from its side files (`pause.json` -> pause
handling, `turn_taking.json` -> smooth turn-taking, `interrupt.json` -> user interruption,
`clean_*` files -> a v1.5 overlap sample, a parent folder named `*backchannel*` -> backchannel),
the group a sample is reported in (its parent folder, e.g. `candor_pause_handling`), and parsing
FDB's side files (transcripts are parsed by `fdb_rules.parse_chunks`). Knows nothing about
scoring.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duplexalign.errors import BadInput

TASKS = ("pause_handling", "backchannel", "smooth_turn_taking", "user_interruption", "v1.5",
         "unknown")
SIDE_TASKS = {"interrupt.json": "user_interruption", "pause.json": "pause_handling",
              "turn_taking.json": "smooth_turn_taking"}
CLEAN_FILES = ("clean_input.wav", "clean_output.wav", "clean_input.json", "clean_output.json")
MARKERS = ("output.wav", "output.json")


@dataclass
class FdbSample:
    """One sample folder.

    Attributes:
        id: path relative to the root ("." for the root itself).
        folder: the folder.
        task: one of `TASKS`.
        group: the row it is reported in (its parent folder's relative path, or the task).
        files: names of the files present.
        side: parsed task side files by name (`interrupt.json`, `pause.json`, `turn_taking.json`).
        error: a side file that could not be read (the sample is scored as a failure with it).
    """

    id: str
    folder: Path
    task: str
    group: str
    files: set[str] = field(default_factory=set)
    side: dict[str, Any] = field(default_factory=dict)
    error: BadInput | None = None

    def has(self, name: str) -> bool:
        """True when the folder holds `name`."""
        return name in self.files

    @property
    def name(self) -> str:
        """The folder's own name (FDB keys the human backchannel histograms by it)."""
        return self.folder.name


def read_json(path: Path) -> Any:
    """A JSON file, or BadInput("bad_json") naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput("bad_json", f"{path}: {e}") from None


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """Samples [S] (float32, channels averaged) and the native rate of an audio file."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [S, C]
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise BadInput("audio_unreadable", f"{path}: {e}") from None
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], int(sr)


def task_of(files: set[str], parent_name: str) -> str:
    """The FDB task of a sample folder from the files it holds and its parent folder's name."""
    if any(f in files for f in CLEAN_FILES):
        return "v1.5"
    for name, task in SIDE_TASKS.items():
        if name in files:
            return task
    if "backchannel" in parent_name.lower():
        return "backchannel"
    return "unknown"


def find_samples(root: Path, task: str | None = None) -> list[FdbSample]:
    """Every sample folder at or below `root`, sorted by id.

    Args:
        root: the FDB folder (a task folder of numbered samples, or a folder of task folders).
        task: force this task for every sample (one of `TASKS`) instead of detecting it.

    Raises:
        BadInput: "input_missing" when `root` holds no sample folder (an unreadable side file is
            kept on its sample as `error`).
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInput("input_missing", f"{root} is not a folder")
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files = set(filenames)
        if not any(m in files for m in MARKERS):
            continue
        folder = Path(dirpath)
        rel = folder.relative_to(root)
        parent = rel.parent if str(rel) != "." else Path(".")
        t = task or task_of(files, (root / parent).resolve().name)
        group = str(parent) if str(parent) != "." else (root.name or t)
        side, error = {}, None
        try:
            side = {n: read_json(folder / n) for n in SIDE_TASKS if n in files}
        except BadInput as e:
            error = e
        out.append(FdbSample(id=str(rel), folder=folder, task=t, group=group, files=files,
                             side=side, error=error))
    if not out:
        raise BadInput("input_missing", f"no folder under {root} holds {' or '.join(MARKERS)}")
    return sorted(out, key=lambda s: s.id)


def turn_end(sample: FdbSample) -> float | None:
    """The user time FDB measures latency from: `turn_taking.json[0].timestamp[0]` (smooth
    turn-taking) or `interrupt.json[0].timestamp[1]` (user interruption); None otherwise."""
    try:
        if sample.task == "smooth_turn_taking":
            return float(sample.side["turn_taking.json"][0]["timestamp"][0])
        if sample.task == "user_interruption":
            return float(sample.side["interrupt.json"][0]["timestamp"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise BadInput("bad_schema", f"{sample.folder}: its task file has no usable timestamp"
                       ) from None
    return None
