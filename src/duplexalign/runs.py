"""The run-directory convention: one folder per run, one DONE marker and stats per stage.

Owns where stage outputs live and how a stage says it finished. A run directory holds each stage's
manifests (`conversations.jsonl.gz`, `annotations.jsonl.gz`, ...), `stats.json` (a section per stage),
`provenance.json` (resolved config, git hash, package versions, input digests per stage) and
`.done/<stage>` markers. `StageRun` is the template every stage shares: the stage declares its
upstream stage and the run-directory files it reads; the template digests them with the config,
skips a finished run with the same digest (restoring its counts), counts the drop manifest by reason,
and writes stats, provenance and the DONE marker. A stage's digest covers the bytes of its inputs,
so a rerun after an upstream change reruns exactly the stages whose inputs changed.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from duplexalign.errors import ConfigError, StageNotDone
from duplexalign.manifest import iter_dicts

CONVERSATIONS = "conversations.jsonl.gz"
"""ingest's output: one `Conversation` per line."""
ANNOTATIONS = "annotations.jsonl.gz"
"""annotate's output: one `Issue` per line."""
PAIRS = "pairs.jsonl.gz"
"""pairs' output: one `PreferencePair` per line (the mix)."""

_PACKAGES = ("duplexalign", "torch", "moshi", "numpy", "pydantic", "sentencepiece", "soundfile",
             "faster-whisper", "silero-vad", "espeakng-loader", "faiss-cpu")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of what a file holds: the decompressed bytes of a `.gz` file (a manifest
    rewritten on resume holds the same records in other gzip members), else its bytes."""
    if not str(path).endswith(".gz"):
        return sha256_file(path, chunk)
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_json(obj: Any) -> str:
    """Stable short digest of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@functools.cache
def git_hash() -> str | None:
    """The git commit of the duplexalign source tree, or None outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (looked up once per process)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class StageStats:
    """What a stage did: counts by name (e.g. `written`, `quarantined/<reason>`) and extra values."""

    stage: str
    counts: Counter = field(default_factory=Counter)
    values: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    def add(self, key: str, n: int = 1) -> None:
        """Increase count `key` by `n`."""
        self.counts[key] += n

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = {"counts": dict(sorted(self.counts.items())), **self.values}
        if self.skipped:
            out["skipped"] = True
        return out


class RunDir:
    """A run directory on disk. Stages read and write inside it through these helpers.

    Args:
        root: the directory.
        create: create it when missing (the stage that starts a run); otherwise a missing
            directory is a `ConfigError`. A path that exists but is not a directory always is.
    """

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"{self.root} exists and is not a directory (give a run directory)")
        if not create and not self.root.is_dir():
            raise ConfigError(f"run directory {self.root} does not exist")
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        """Path of a file inside the run directory."""
        return self.root / name

    def resolve(self, path: str | Path) -> Path:
        """A path stored in a record: relative paths are relative to the run directory."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def _marker(self, stage: str) -> Path:
        return self.root / ".done" / stage

    def is_done(self, stage: str, config_digest: str | None = None) -> bool:
        """True when `stage` finished (with the same config digest, if one is given)."""
        m = self._marker(stage)
        if not m.exists():
            return False
        return config_digest is None or m.read_text().strip() == config_digest

    def require_done(self, stage: str, needs: str, why: str = "") -> None:
        """Raise `StageNotDone` unless `needs` (the stage before `stage`) has its DONE marker."""
        if not self.is_done(needs):
            raise StageNotDone(stage, needs, str(self.root), why)

    def mark_done(self, stage: str, config_digest: str = "") -> None:
        """Write the DONE marker of `stage`."""
        atomic_write_text(self._marker(stage), config_digest + "\n")

    def clear_done(self, stage: str) -> None:
        """Remove the DONE marker of `stage` (forces a rerun)."""
        self._marker(stage).unlink(missing_ok=True)

    def read_stats(self) -> dict[str, Any]:
        """The whole stats.json (a section per stage)."""
        p = self.path("stats.json")
        return json.loads(p.read_text()) if p.exists() else {}

    def write_stats(self, stats: StageStats) -> None:
        """Store the section of `stats.stage` in stats.json."""
        allstats = self.read_stats()
        allstats[stats.stage] = stats.to_dict()
        atomic_write_text(self.path("stats.json"), json.dumps(allstats, indent=2, sort_keys=True))

    def write_provenance(self, stage: str, config: Any, inputs: dict[str, str] | None = None) -> None:
        """Record the resolved config, git hash, package versions and input digests of `stage`."""
        p = self.path("provenance.json")
        prov = json.loads(p.read_text()) if p.exists() else {}
        cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
        prov[stage] = {
            "config": cfg,
            "git": git_hash(),
            "packages": package_versions(),
            "inputs": inputs or {},
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_text(p, json.dumps(prov, indent=2, sort_keys=True, default=str))


class StageRun:
    """One run of one stage in a run directory: what every stage shares, so its module holds only
    its own logic.

    Opening it checks that the upstream stage `needs` finished and that every input file exists,
    then digests the inputs and the config. `previous()` gives the counts of a finished run with
    the same digest (the stage returns them and does nothing); `finish()` writes stats, provenance
    and the DONE marker.

    Args:
        stage: the stage's name (its stats/provenance section and DONE marker).
        cfg: the stage's config (a pydantic model).
        run_dir: the run directory.
        inputs: run-directory files the stage reads; their `content_digest` enters the digest.
        needs: the stage that must have finished first (None for the first stage).
        why: said when `needs` has not finished.
        create: create the run directory (the first stage); otherwise it must exist.
        digested: the config as it enters the digest; None = all of `cfg` (leave out options that
            do not change results, such as concurrency).
        extra_inputs: more input digests computed by the stage (e.g. of a folder), or a function
            that returns them once the checks above passed.
    """

    def __init__(self, stage: str, cfg: Any, run_dir: str | Path, *, inputs: tuple[str, ...] = (),
                 needs: str | None = None, why: str = "", create: bool = False,
                 digested: dict[str, Any] | None = None,
                 extra_inputs: dict[str, str] | Callable[[], dict[str, str]] | None = None):
        self.stage, self.cfg = stage, cfg
        self.rd = RunDir(run_dir, create=create)
        if needs is not None:
            self.rd.require_done(stage, needs, why)
        for name in inputs:
            if not self.rd.path(name).is_file():
                first = f": run `duplexalign {needs}` first" if needs else ""
                raise ConfigError(f"{self.rd.path(name)} does not exist{first}")
        self.inputs = {name: content_digest(self.rd.path(name)) for name in inputs}
        self.inputs.update((extra_inputs() if callable(extra_inputs) else extra_inputs) or {})
        config = digested if digested is not None else cfg.model_dump(mode="json")
        self.digest = digest_json({"config": config, "inputs": self.inputs})
        self.stats = StageStats(stage)

    def previous(self) -> StageStats | None:
        """The restored stats of a finished run with the same digest (`skipped`), else None."""
        if not self.rd.is_done(self.stage, self.digest):
            return None
        logging.getLogger(__name__).info("%s already done in %s (same config and input): "
                                         "nothing to do", self.stage, self.rd.root)
        prev = self.rd.read_stats().get(self.stage, {})
        return StageStats(self.stage, Counter(prev.get("counts", {})), skipped=True)

    def count_drops(self, name: str, prefix: str = "dropped", total: bool = False) -> None:
        """Add a `<prefix>/<reason>` count per reason of the drop manifest `name` (and the
        `<prefix>` total with `total`)."""
        reasons = Counter(d.get("reason", "?") for d in iter_dicts(self.rd.path(name)))
        if total:
            self.stats.add(prefix, sum(reasons.values()))
        for reason, n in reasons.items():
            self.stats.add(f"{prefix}/{reason}", n)

    def finish(self, done: bool = True, provenance: dict[str, str] | None = None) -> StageStats:
        """Write the stats and provenance; with `done`, the DONE marker keyed on the digest."""
        self.rd.write_stats(self.stats)
        self.rd.write_provenance(self.stage, self.cfg, {**self.inputs, **(provenance or {})})
        if done:
            self.rd.mark_done(self.stage, self.digest)
        return self.stats
