"""The ingest stage: any registered input format -> conversations.jsonl.gz, quarantine, stats.

Owns the orchestration of one ingest run into a run directory: it drives the reader named by
`IngestConfig.format`, loads and checks each conversation's audio (`wav.py`), validates it
(`validate.py`), writes per-channel mono 24 kHz wavs to `audio/<safe id>/model.wav` (and `user.wav`
only with `keep_user_audio`), and appends the record to `conversations.jsonl.gz`. Every item that
fails goes to `quarantine.jsonl.gz` as `{item, reason, detail, source, conversation_id}` and the batch
goes on. `Conversation.audio` paths are relative to the run directory (resolve them with
`RunDir.resolve`), so a run folder can be moved. Reruns resume: ids already written are skipped, and a
finished run with the same config and input digest is a no-op (`runs.StageRun`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from duplexalign.engine import digested, ordered_map
from duplexalign.errors import BadInput, ConfigError
from duplexalign.ingest.audio import make_asr
from duplexalign.ingest.base import (
    READERS,
    ChannelSource,
    Found,
    IngestConfig,
    Pending,
    ReadResult,
    Rejected,
    Skipped,
    guarded,
)
from duplexalign.ingest.validate import check_conversation
from duplexalign.ingest.wav import load_channels, write_mono
from duplexalign.manifest import ManifestWriter, iter_dicts
from duplexalign.records import CHANNELS, Channel, ChannelAudio, Conversation
from duplexalign.runs import CONVERSATIONS, RunDir, StageRun, StageStats, digest_json, sha256_file
from duplexalign.text import safe_id
from duplexalign.timebase import SAMPLE_RATE

STAGE = "ingest"
QUARANTINE = "quarantine.jsonl.gz"
logger = logging.getLogger(__name__)


def input_digest(path: Path, exclude: Path | None = None) -> str:
    """Digest of the input itself: the sha256 of an input file, or a listing (relative names,
    sizes, mtimes) of an input folder's tree with `exclude` (the run directory) left out. Nothing
    outside the input counts: files an input file names are not listed (edit the input, or
    delete the run's DONE marker, to redo a run whose audio changed).
    """
    if path.is_file():
        return digest_json([sha256_file(path), []])
    listing = []
    for p in path.rglob("*"):
        if exclude is not None and p.is_relative_to(exclude):
            continue
        if p.is_file():
            st = p.stat()
            listing.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns))
    return digest_json(["", sorted(listing)])


def run(cfg: IngestConfig, run_dir: str | Path) -> StageStats:
    """Ingest `cfg.input` with the reader `cfg.format` into the run directory `run_dir`.

    Args:
        cfg: ingest options (input path, format, speaker map, privacy, thresholds).
        run_dir: run directory; gets conversations.jsonl.gz, quarantine.jsonl.gz, stats.json,
            provenance.json and audio/.

    Returns:
        The stage's stats (also stored in `stats.json`): `read`, `written`, `resumed`,
        `conversations` (total in the manifest), `quarantined` and `quarantined/<reason>`,
        `words/model`, `words/user`, `resampled`.

    Raises:
        ConfigError: no input, unknown format, or `run_dir` inside the input folder. BadInput: the
            input path does not exist.
    """
    if cfg.input is None:
        raise ConfigError("ingest.input: the input file or folder is required "
                          "(`duplexalign ingest INPUT --out RUN`, or `--set ingest.input=PATH`)")
    input_path = Path(cfg.input).absolute()
    READERS.get(cfg.format)
    if not input_path.exists():
        raise BadInput("input_missing", f"{input_path} does not exist")
    root = Path(run_dir).absolute()
    if input_path.is_dir() and root.is_relative_to(input_path):
        raise ConfigError(f"the run directory {run_dir} is inside the input folder {input_path}; "
                          "choose an --out outside it")
    in_digest = input_digest(input_path, exclude=root)
    # the input enters the digest by content, not by where it lies
    st = StageRun(STAGE, cfg, run_dir, create=True, extra_inputs={"input_digest": in_digest},
                  digested=digested(cfg, exclude={"input"}))
    if (prev := st.previous()) is not None:
        return prev
    _ingest(cfg, input_path, st.rd, st.stats)
    st.count_drops(QUARANTINE, "quarantined", total=True)
    if st.stats.counts["resumed"]:
        _recount_words(st.rd, st.stats)
    st.finish(provenance={"input": str(input_path)})
    logger.info("ingest: %d conversations, %d quarantined", st.stats.counts["conversations"],
                st.stats.counts["quarantined"])
    return st.stats


def _ingest(cfg: IngestConfig, input_path: Path, rd: RunDir, stats: StageStats) -> None:
    """Read every item of the input, write the new conversations, quarantine the rest."""
    reader = READERS.get(cfg.format)
    with ManifestWriter(rd.path(CONVERSATIONS)) as convs, \
            ManifestWriter(rd.path(QUARANTINE), resume=False, id_field="item") as quarantine:
        # Every item not written yet is judged again on a rerun, so the quarantine is rebuilt
        # from scratch: it never keeps an item that has since been fixed.
        stats.add("resumed", convs.count)
        seen: set[str] = set()  # ids claimed by a written record (a quarantined one claims none)
        owners = {d["id"]: d.get("source", {}).get("path") for d in iter_dicts(
            rd.path(CONVERSATIONS))} if convs.count else {}

        def reject(r: Rejected, conv_id: str | None = None) -> None:
            quarantine.write({"item": r.item, "reason": r.reason, "detail": r.detail,
                              "source": cfg.format, "conversation_id": conv_id})
            logger.debug("quarantined %s: %s (%s)", r.item, r.reason, r.detail)

        results = ordered_map(cfg.engine, partial(IngestWorker, cfg),
                              reader(input_path, cfg, done=frozenset(convs.done)),
                              skip=lambda r: isinstance(r, (Rejected, Skipped)), desc="ingest")
        for i, res in enumerate(tqdm(results, desc="ingest", unit="conv", disable=None)):
            stats.add("read")
            if i % 256 == 255:
                convs.flush()
                quarantine.flush()
            if isinstance(res, Rejected):
                reject(res)
                continue
            if isinstance(res, Skipped):
                found, conv_id = None, res.conversation_id
            else:
                found, prep = res.found, res.prepared
                conv_id = found.conversation.id
            if conv_id in seen:
                item = res.item if found is None else found.item
                reject(Rejected(item, "duplicate_id", f"id {conv_id!r} seen before"), conv_id)
                continue
            if found is None or (conv_id in convs and owners.get(
                    conv_id, found.conversation.source.path) == found.conversation.source.path):
                seen.add(conv_id)
                continue  # written by an earlier, interrupted run
            if conv_id in convs:  # another item took this id in an earlier run: judge, never write
                problems = check_conversation(found.conversation, cfg)
                reject(Rejected(found.item, problems[0].reason, problems[0].detail) if problems
                       else Rejected(found.item, "duplicate_id", f"id {conv_id!r} written by "
                                                                 f"{owners[conv_id]}"), conv_id)
                continue
            if isinstance(prep, Prepared):
                stats.add("resampled", int(prep.resampled))
                out = prep.rejected or guarded(found.item, write_audio, prep, cfg, rd)
            else:
                out = prep
            if isinstance(out, Rejected):
                reject(out, conv_id)  # a quarantined record does not claim its id
            else:
                seen.add(conv_id)
                convs.write(out)
                stats.add("written")
                for ch in CHANNELS:
                    stats.add(f"words/{ch}", len(out.words.of(ch)))
        stats.add("conversations", convs.count)


@dataclass(frozen=True)
class Prepared:
    """One conversation's audio loaded and checked, not written yet (a worker's result).

    Attributes:
        conversation: the record with its duration from the audio (no audio paths yet).
        wavs: channel -> mono 24 kHz waveform `[S]` float32.
        resampled: whether an input was resampled to 24 kHz.
        rejected: the first problem found by validation (then nothing is written), or None.
    """

    conversation: Conversation
    wavs: dict[Channel, np.ndarray]
    resampled: bool
    rejected: Rejected | None = None


@dataclass(frozen=True)
class Worked:
    """What a worker made of one reader result: the `Found` (transcribed, for a `Pending`
    item) and its `Prepared` audio, or the `Rejected` that stopped either."""

    found: Found
    prepared: Prepared | Rejected


class IngestWorker:
    """The per-item work of ingest, run on the engine: a `Pending` item's ASR (the backend is
    built once per worker, on first need), then `prepare` (load and check the audio). Pure: it
    writes nothing, so an item retried on another worker, or prepared and then found a
    duplicate by the driver, leaves no trace.

    Args:
        cfg: the ingest options.
    """

    def __init__(self, cfg: IngestConfig):
        self.cfg = cfg
        self._asr = None

    def __call__(self, res: ReadResult) -> Worked | Rejected:
        """`res` (a `Pending`, `Found` or `Conversation`) -> its `Worked`, or its `Rejected`."""
        if isinstance(res, Pending):
            if self._asr is None:
                self._asr = make_asr(self.cfg)
            res = guarded(res.item, res.resolve, self._asr)
            if isinstance(res, Rejected):
                return res
        found = res if isinstance(res, Found) else Found(res, {}, res.source.path)
        return Worked(found, guarded(found.item, prepare, found, self.cfg))


def prepare(found: Found, cfg: IngestConfig) -> Prepared:
    """Load and check one conversation's audio and validate the conversation.

    Raises:
        BadInput: an audio file is missing (with `require_audio`) or cannot be loaded.
    """
    conv = found.conversation
    present: dict[Channel, ChannelSource] = {}
    for ch, src in found.audio.items():
        if src.path.is_file():
            present[ch] = src
        elif cfg.require_audio:
            raise BadInput("audio_missing", f"{ch} audio {src.path} does not exist")
    wavs, resampled = load_channels(present, cfg.max_duration) if present else ({}, False)
    audio_duration = max(len(w) for w in wavs.values()) / SAMPLE_RATE if wavs else None
    problems = check_conversation(conv, cfg, audio_duration)
    rejected = (Rejected(found.item, problems[0].reason,
                         "; ".join(f"{p.reason}: {p.detail}" for p in problems))
                if problems else None)
    conv = conv.model_copy(update={"duration": audio_duration or conv.duration,
                                   "user_audio_existed": "user" in wavs})
    return Prepared(conv, wavs, resampled, rejected)


def write_audio(prep: Prepared, cfg: IngestConfig, rd: RunDir) -> Conversation:
    """Copy a prepared conversation's audio into the run directory; the final record."""
    paths: dict[str, str] = {}
    conv = prep.conversation
    for ch, wav in prep.wavs.items():
        if ch == "user" and not cfg.keep_user_audio:
            continue
        rel = f"audio/{safe_id(conv.id)}/{ch}.wav"
        write_mono(rd.resolve(rel), wav)
        paths[ch] = rel
    return conv.model_copy(update={"audio": ChannelAudio(**paths)})


def _recount_words(rd: RunDir, stats: StageStats) -> None:
    for ch in CHANNELS:
        stats.counts[f"words/{ch}"] = 0
    for d in iter_dicts(rd.path(CONVERSATIONS)):
        for ch in CHANNELS:
            stats.add(f"words/{ch}", len(d["words"][ch]))
