"""Scoring a Full-Duplex-Bench folder produced by any model: per-sample numbers, then rows with CIs.

Owns applying `fdb_rules` to each sample folder of `layout.find_samples`: TOR for every v1 task,
latency from the side file's user time (smooth turn-taking, user interruption), the backchannel
scan of `output.wav` (Silero VAD as FDB runs it: the TorchScript model, default settings, samples
read as 16 kHz, times rounded to 0.1 s) against the human histogram of the same clip in
`icc_gt_distribution.json`, the v1.5 overlap timing of `input.wav` / `output.wav` (VAD at 16 kHz,
merged 0.6 s / 0.5 s), and the two judged columns through `judge`. Words come from `output.json`;
when it is absent they come from our ASR (FDB uses parakeet-tdt-0.6b-v2; the record says which),
with FDB's crop at the end of the interruption. Each group (task folder) becomes one row: means
with seeded bootstrap 95 % intervals over samples (`metrics.mean_ci`); stop and response latency
are per-sample means of the interval lengths, then averaged over samples (FDB leaves the
aggregation of its intervals to the reader). Bad samples are kept as failures with a reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duplexalign.errors import BadInput
from duplexalign.evaluate.fdb import judge as fdbj
from duplexalign.evaluate.fdb.layout import FdbSample, read_json, read_mono, turn_end
from duplexalign.evaluate.metrics import DEFAULT_RESAMPLES, mean_ci
from duplexalign.fdb_rules import (
    MODEL_MERGE_GAP,
    USER_MERGE_GAP,
    VAD_RATE,
    Chunk,
    backchannel_frequency,
    backchannel_jsd,
    backchannel_scan,
    latency,
    mean_length,
    merge_intervals,
    overlaps,
    parse_chunks,
    response_gaps,
    takeover,
)

log = logging.getLogger(__name__)

METRICS: dict[str, tuple[str, ...]] = {
    "pause_handling": ("tor",),
    "backchannel": ("tor", "frequency", "jsd"),
    "smooth_turn_taking": ("tor", "latency"),
    "user_interruption": ("tor", "relevance", "latency"),
    "v1.5": (),
    "unknown": (),
}
"""FDB's published columns of each task (v1.5 behaviour and overlap timing are added when present)."""
TIMING = ("stop_latency", "response_latency")


def human_histograms(data_dir: Path) -> dict[str, list[float]]:
    """FDB's human backchannel histograms by clip (`icc_gt_distribution.json`), {} when absent."""
    path = Path(data_dir) / "full_duplex_bench" / "v1_v1.5" / "icc_gt_distribution.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass
class FdbScorer:
    """What scoring needs besides the folder; backends are built on first use.

    Attributes:
        data_dir: benchmark data (`icc_gt_distribution.json`, `instruction/behavior.txt`).
        asr_name: ASR backend for samples without `output.json`.
        judge: an LLM client (`run_many`) for relevance and behaviour, or None (columns left out).
        overlap_timing: run the v1.5 stop / response latency on every sample with both wavs.
    """

    data_dir: Path
    asr_name: str = "whisper"
    judge: Any | None = None
    overlap_timing: bool = True
    _vad: Any = field(default=None, repr=False)
    _asr: Any = field(default=None, repr=False)
    _human: dict[str, list[float]] | None = field(default=None, repr=False)

    def vad(self) -> Any:
        """Silero VAD as FDB loads it (TorchScript, default thresholds)."""
        if self._vad is None:
            from duplexalign.speech.vad import SileroVAD

            self._vad = SileroVAD(onnx=False)
        return self._vad

    def asr(self) -> Any:
        """Our ASR backend (`asr_name`)."""
        if self._asr is None:
            from duplexalign.speech.base import ASR_BACKENDS

            self._asr = ASR_BACKENDS.get(self.asr_name)()
        return self._asr

    def human(self) -> dict[str, list[float]]:
        """The human backchannel histograms."""
        if self._human is None:
            self._human = human_histograms(self.data_dir)
        return self._human


def model_chunks(s: FdbSample, sc: FdbScorer) -> tuple[list[Chunk], str]:
    """The model's word chunks and where they came from ("output.json" or "asr:<name>")."""
    if s.has("output.json"):
        return parse_chunks(read_json(s.folder / "output.json"), f"{s.id}/output.json"), \
            "output.json"
    if not s.has("output.wav"):
        return [], "none"
    wav, sr = read_mono(s.folder / "output.wav")
    offset = 0.0
    if s.task == "user_interruption":  # FDB transcribes only what follows the interruption
        offset = turn_end(s) or 0.0
        wav = wav[int(offset * sr):]
    words = sc.asr().transcribe(wav, sr)
    return [Chunk(w.text, w.start + offset, w.end + offset) for w in words], f"asr:{sc.asr_name}"


def backchannel_segments(s: FdbSample, sc: FdbScorer) -> tuple[list[tuple[float, float]], float]:
    """VAD segments of `output.wav` the way FDB's backchannel script gets them, and the clip length.

    FDB quirk: the samples are handed to the VAD as 16 kHz whatever the file's rate (a 24 kHz file
    is read 1.5 times slower) and times are rounded to 0.1 s; the clip length uses the real rate.
    """
    wav, sr = read_mono(s.folder / "output.wav")
    if sr != VAD_RATE:
        log.warning("%s: output.wav is %d Hz; FDB's backchannel VAD reads it as 16 kHz and so do "
                    "we (write 16 kHz files to avoid this)", s.id, sr)
    limit = len(wav) / VAD_RATE
    segs = [(max(round(a, 1), 0.0), min(round(b, 1), limit))
            for a, b in sc.vad().segments(wav, VAD_RATE)]
    return segs, len(wav) / sr


def overlap_timing(s: FdbSample, sc: FdbScorer) -> dict[str, Any]:
    """v1.5 stop and response latency of one sample with `input.wav` and `output.wav`."""
    def merged(name: str, gap: float) -> list[tuple[float, float]]:
        wav, sr = read_mono(s.folder / name)
        return merge_intervals(sc.vad().segments(wav, sr), gap)

    user, model = merged("input.wav", USER_MERGE_GAP), merged("output.wav", MODEL_MERGE_GAP)
    stops, gaps = overlaps(user, model), response_gaps(user, model)
    return {"stop_intervals": stops, "response_intervals": gaps,
            "stop_latency": mean_length(stops), "response_latency": mean_length(gaps)}


def score_sample(s: FdbSample, sc: FdbScorer) -> dict[str, Any]:
    """The judge-free numbers of one sample (a failure record with a reason on bad input)."""
    rec: dict[str, Any] = {"id": s.id, "group": s.group, "task": s.task}
    try:
        if s.error is not None:
            raise s.error
        chunks, source = model_chunks(s, sc)
        rec["words_from"] = source
        rec["words"] = [[c.text, c.start, c.end] for c in chunks]
        if s.task in ("pause_handling", "smooth_turn_taking", "user_interruption"):
            rec["tor"] = takeover(chunks)
            t = turn_end(s)
            if t is not None:
                rec["latency"] = latency(chunks, t)
        elif s.task == "backchannel":
            if not s.has("output.wav"):
                raise BadInput("audio_missing", f"{s.id}: the backchannel task needs output.wav")
            segs, clip = backchannel_segments(s, sc)
            scan = backchannel_scan(segs, chunks)
            human = sc.human().get(s.name)
            rec.update(tor=scan.tor, backchannels=scan.backchannels,
                       frequency=backchannel_frequency(scan.backchannels, clip),
                       frequency_strict=backchannel_frequency(scan.strict, clip),
                       jsd=None if human is None else backchannel_jsd(scan.backchannels, clip,
                                                                     human))
            if human is None:
                rec["note"] = f"no human histogram for clip {s.name!r}: JSD left out"
        if sc.overlap_timing and s.has("input.wav") and s.has("output.wav"):
            rec.update(overlap_timing(s, sc))
    except BadInput as e:
        rec["failure"] = {"reason": e.reason, "detail": e.detail}
    return rec


def judge_samples(samples: Sequence[FdbSample], recs: list[dict[str, Any]], sc: FdbScorer) -> None:
    """Add `relevance` (interruption samples with TOR = 1) and `behaviour` (v1.5 samples holding
    the four transcripts) to `recs` in one batch of concurrent judge calls."""
    if sc.judge is None:
        return
    from duplexalign.judges.llm import LLMFailure

    reqs, index = [], []
    instruction: str | None = None
    four = ("clean_input.json", "input.json", "clean_output.json", "output.json")
    for i, (s, r) in enumerate(zip(samples, recs, strict=True)):
        if "failure" in r:
            continue
        if s.task == "user_interruption" and r.get("tor") == 1:
            meta = s.side["interrupt.json"][0]
            reply = " ".join(w[0] for w in r["words"])
            reqs.append(fdbj.relevance_request(str(meta.get("context", "")),
                                               str(meta.get("interrupt", "")), reply))
            index.append((i, "relevance"))
        elif s.task == "v1.5" and all(s.has(n) for n in four):
            instruction = instruction or fdbj.behaviour_instruction(sc.data_dir)
            docs = dict(zip(("input_clean", "input_noisy", "output_clean", "output_noisy"),
                            (read_json(s.folder / n) for n in four), strict=True))
            reqs.append(fdbj.behaviour_request(instruction, docs))
            index.append((i, "behaviour"))
    if not reqs:
        return
    parse = {"relevance": fdbj.parse_relevance, "behaviour": fdbj.parse_behaviour}
    for (i, what), res in zip(index, sc.judge.run_many(reqs), strict=True):
        if isinstance(res, LLMFailure):
            recs[i]["judge_failure"] = res.to_dict()
            continue
        try:
            recs[i][what] = parse[what](res.data)
        except (KeyError, ValueError, TypeError) as e:
            recs[i]["judge_failure"] = {"kind": "bad_answer", "detail": str(e)}
    model = getattr(sc.judge, "model", "")
    for r in recs:
        if "relevance" in r or "behaviour" in r or "judge_failure" in r:
            r["judge"] = {"model": model, "prompt_id": fdbj.BEHAVIOUR_PROMPT_ID
                          if "behaviour" in r else fdbj.RELEVANCE_PROMPT_ID}


def aggregate(recs: Sequence[dict[str, Any]], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
              ) -> dict[str, dict[str, Any]]:
    """One row per group: task, sample counts and {metric: Estimate dict} (bootstrap 95 % CI)."""
    rows: dict[str, dict[str, Any]] = {}
    for g in sorted({r["group"] for r in recs}):
        rs = [r for r in recs if r["group"] == g]
        ok = [r for r in rs if "failure" not in r]
        tasks = sorted({r["task"] for r in rs})
        names = [m for t in tasks for m in METRICS.get(t, ())]
        if any("behaviour" in r for r in ok):
            names += [f"behaviour/{t}" for t in fdbj.TAGS]
        names += [m for m in TIMING if any(r.get(m) is not None for r in ok)]
        metrics = {}
        for m in dict.fromkeys(names):
            if m.startswith("behaviour/"):
                tag = m.split("/", 1)[1]
                vals = [None if "behaviour" not in r else float(r["behaviour"] == tag) for r in ok]
            else:
                vals = [r.get(m) for r in ok]
            metrics[m] = mean_ci(vals, resamples=resamples, seed=seed).to_dict()
        rows[g] = {"task": "+".join(tasks), "num_samples": len(rs), "failures": len(rs) - len(ok),
                   "words_from_asr": sum(1 for r in ok if r.get("words_from", "").startswith("asr")),
                   "metrics": metrics}
    return rows
