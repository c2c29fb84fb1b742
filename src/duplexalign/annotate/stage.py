"""The annotate stage: every conversation of a run -> timing and content `Issue` records.

Owns the orchestration: read `conversations.jsonl.gz`, apply the enabled timing rules (pure, fast)
and the configured content judge (LLM calls, concurrent, cached) to the conversation's replies (each
given its `reply_id` here, once, under `rules.segment_gap`), and append the findings to
`annotations.jsonl.gz` in conversation order (so later stages merge-join them with the
conversations). Progress is kept per conversation in `annotate_progress.jsonl.gz`; a conversation
whose judge call failed is recorded in `annotate_failures.jsonl` as a typed failure and is judged
again on the next run, so nothing is lost and a rerun asks the LLM only what is missing (answers are
cached by payload hash). With `llm.url` unset the offline local server is started and stopped here.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import os
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from tqdm import tqdm

from duplexalign.config import StageConfig
from duplexalign.engine import EngineConfig, ordered_map
from duplexalign.errors import BadInput
from duplexalign.judges.base import JUDGES, RULES, run_rules
from duplexalign.judges.content import LLMJudgeConfig
from duplexalign.judges.endpoint import ENDPOINT_RUNTIME, open_judge
from duplexalign.judges.llm import LLMClient
from duplexalign.judges.rules import TimingRulesConfig
from duplexalign.manifest import ManifestWriter, iter_dicts, write_manifest
from duplexalign.records import Conversation, Issue
from duplexalign.runs import (
    ANNOTATIONS,
    CONVERSATIONS,
    RunDir,
    StageRun,
    StageStats,
    atomic_write_text,
)
from duplexalign.segments import replies

log = logging.getLogger(__name__)

STAGE = "annotate"
PROGRESS = "annotate_progress.jsonl.gz"
FAILURES = "annotate_failures.jsonl"
QUARANTINE = "annotate_quarantine.jsonl.gz"
ISSUE_FORMAT = 2
"""Version of the issue records: 2 = with `reply_id`, in conversation order (a run annotated by an
earlier version is annotated again)."""


class AnnotateConfig(StageConfig):
    """Options of the annotate stage (section `annotate:` of a preset)."""

    judge: str = "llm"
    """Content judge (registry name, see `duplexalign ls`) or "none" for timing rules only."""
    rules: TimingRulesConfig = Field(default_factory=TimingRulesConfig)
    """Timing rules to run and their thresholds."""
    llm: LLMJudgeConfig = Field(default_factory=LLMJudgeConfig)
    """The LLM endpoint and judge options (answers cached in `llm.cache_dir`, default
    RUN/judge_cache); the pairs stage's rewriter uses the same endpoint unless told otherwise."""
    vad: str | None = None
    """VAD backend (e.g. "silero") run on channels that have audio; None uses words only."""
    in_flight: int = Field(16, ge=1)
    """Conversations judged at the same time (each may make several calls)."""
    progress: bool = True
    """Show a progress bar."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """Where conversations are judged (`engine.py`): on `ray` each worker holds the VAD model and
    sends its judge calls to the same HTTP endpoint (`llm.url`; without one, the local server
    started by the driver)."""


def _digested(cfg: AnnotateConfig) -> dict:
    """The config as it enters the digest (options that do not change verdicts left out), with
    the issue format, so that a new format re-annotates."""
    d = cfg.model_dump(mode="json", exclude={"progress", "in_flight", "engine"})
    for k in ENDPOINT_RUNTIME:
        d["llm"].pop(k, None)
    return {**d, "issue_format": ISSUE_FORMAT}


def judged_with(rd: RunDir) -> LLMJudgeConfig | None:
    """The LLM endpoint and judge options annotate last ran with in `rd` (the `annotate.llm`
    section of RUN/provenance.json, keys this version no longer knows left out), or None when
    annotate has not run there. Later stages that call an LLM default to it (pairs' rewriter,
    GRPO's content judge), so a run talks to one endpoint unless told otherwise."""
    prov = rd.path("provenance.json")
    llm = (json.loads(prov.read_text()).get(STAGE, {}).get("config", {}).get("llm")
           if prov.exists() else None)
    if not isinstance(llm, dict):
        return None
    return LLMJudgeConfig.model_validate({k: v for k, v in llm.items()
                                          if k in LLMJudgeConfig.model_fields})


def _vad_segments(conv: Conversation, cfg: AnnotateConfig, rd: RunDir, vad) -> dict | None:
    if vad is None:
        return None
    from duplexalign.speech.audio import read_audio

    out = {}
    for ch in ("model", "user"):
        path = getattr(conv.audio, ch)
        if path:
            out[ch] = vad.segments(read_audio(rd.resolve(path), 16000), 16000)
    return out or None


def run(cfg: AnnotateConfig, run_dir: str | Path) -> StageStats:
    """Annotate every conversation of a run directory.

    Args:
        cfg: stage options.
        run_dir: the directory `duplexalign ingest --out` wrote (must hold conversations.jsonl.gz).
            Gets annotations.jsonl.gz, annotate_progress.jsonl.gz, annotate_failures.jsonl,
            judge_cache/ and the `annotate` sections of stats.json and provenance.json.

    Returns:
        The stage statistics (also written to stats.json). Judge failures leave the stage unfinished
        (no DONE marker) so that the next run retries them.
    """
    st = StageRun(STAGE, cfg, run_dir, inputs=(CONVERSATIONS,), needs="ingest",
                  why="its conversations may be incomplete", digested=_digested(cfg))
    for name in cfg.rules.enabled:
        RULES.get(name)
    if cfg.judge != "none":
        JUDGES.get(cfg.judge)
    if (prev := st.previous()) is not None:
        return prev
    rd, digest, stats, src = st.rd, st.digest, st.stats, st.rd.path(CONVERSATIONS)
    _archive_if_config_changed(rd, digest)
    failures: list[dict] = []
    with ExitStack() as stack:
        progress = stack.enter_context(ManifestWriter(rd.path(PROGRESS)))
        out = stack.enter_context(ManifestWriter(rd.path(ANNOTATIONS)))
        quarantine = stack.enter_context(ManifestWriter(rd.path(QUARANTINE)))
        pending = _pending(src, progress, quarantine, stats)
        judge = None
        if cfg.judge != "none" and pending:
            judge = open_judge(cfg.judge, cfg.llm, stack, rd.path("judge_cache"))
        if cfg.engine.kind == "ray" and pending:
            # workers reach the endpoint by URL (the local server, when started, runs here)
            client = getattr(judge, "client", None)
            ep = (cfg.llm.model_copy(update={"url": client.base_url, "model": client.model})
                  if isinstance(client, LLMClient) else None)
            for j in tqdm(ordered_map(cfg.engine, partial(AnnotateWorker, cfg, str(rd.root), ep),
                                      pending, desc="annotate"),
                          total=len(pending), desc="annotate", unit="conv",
                          disable=not cfg.progress):
                _record(j, out, progress, failures, stats, digest)
        else:
            asyncio.run(_annotate(pending, cfg, rd, judge, _make_vad(cfg), out, progress,
                                  failures, stats, digest))
        llm_stats = getattr(getattr(judge, "client", None), "stats", None)
        if llm_stats:
            stats.values["llm"] = dict(llm_stats)
    atomic_write_text(rd.path(FAILURES), "".join(json.dumps(f) + "\n" for f in failures))
    _summarise(rd, stats, failures)
    st.count_drops(QUARANTINE, "quarantined")
    if not failures:
        _sort_by_conversation(rd)
    else:
        log.debug("%d conversations had judge failures; rerun to retry them (see %s)",
                  len({f["conversation_id"] for f in failures}), rd.path(FAILURES))
    return st.finish(done=not failures)  # failures leave it unfinished: the next run retries


def _sort_by_conversation(rd: RunDir) -> None:
    """Put annotations.jsonl.gz in conversation order when resumed runs appended out of order.

    Each run writes in conversation order, so the file is a few sorted runs (one more per resume
    after judge failures); they are merged lazily. Memory: one integer per conversation id.
    """
    order = {str(d.get("id")): i for i, d in enumerate(iter_dicts(rd.path(CONVERSATIONS)))}
    path = rd.path(ANNOTATIONS)
    starts, last = [0], -1
    for n, d in enumerate(iter_dicts(path)):
        k = order.get(d["conversation_id"], -1)
        if k < last:
            starts.append(n)
        last = k
    if len(starts) == 1:
        return
    runs = [islice(iter_dicts(path), a, b) for a, b in zip(starts, [*starts[1:], None],
                                                              strict=True)]
    write_manifest(path, heapq.merge(*runs, key=lambda d: order.get(d["conversation_id"], -1)))


def _archive_if_config_changed(rd: RunDir, digest: str) -> None:
    """Move annotations made under another config aside (`*.prev.jsonl.gz`) so verdicts of two
    configs never mix."""
    old = {d.get("digest") for d in iter_dicts(rd.path(PROGRESS))}
    if not old or old == {digest}:
        return
    log.warning("annotate config or input changed: previous annotations moved to *.prev.jsonl.gz")
    for name in (ANNOTATIONS, PROGRESS):
        for p in (rd.path(name), rd.path(name + ".partial")):
            if p.exists():
                os.replace(p, p.with_name(p.name.replace(".jsonl.gz", ".prev.jsonl.gz")))


def _pending(src: Path, progress: ManifestWriter, quarantine: ManifestWriter,
             stats: StageStats) -> list[Conversation]:
    """Conversations not yet annotated; invalid records go to the quarantine manifest."""
    out = []
    for i, d in enumerate(iter_dicts(src)):
        cid = str(d.get("id", f"line{i}"))
        if cid in progress:
            continue
        try:
            out.append(Conversation.model_validate(d))
        except ValidationError as e:
            quarantine.write({"id": cid, "reason": "invalid_conversation", "detail": str(e)[:500]})
    return out


async def _annotate(pending: list[Conversation], cfg: AnnotateConfig, rd: RunDir, judge, vad,
                    out: ManifestWriter, progress: ManifestWriter, failures: list[dict],
                    stats: StageStats, digest: str) -> None:
    bar = tqdm(total=len(pending), desc="annotate", unit="conv", disable=not cfg.progress)

    # Up to `in_flight` conversations are judged at once; results are written in conversation
    # order (the window holds at most `in_flight` finished or running ones).
    it = iter(pending)
    window: deque[asyncio.Task] = deque()
    while True:
        while len(window) < cfg.in_flight and (conv := next(it, None)) is not None:
            window.append(asyncio.ensure_future(judge_one(conv, cfg, rd, judge, vad)))
        if not window:
            break
        head = window.popleft()
        try:
            await head
        except BaseException:
            for task in window:
                task.cancel()
            raise
        _record(head.result(), out, progress, failures, stats, digest)
        bar.update(1)
    bar.close()


@dataclass
class Judged:
    """One conversation's findings (a worker's result): timing issues, the judge's outcome (or
    None), its redaction counts, the user speech its injection filter withheld (by rule), and the
    reason VAD was skipped (or None)."""

    conversation: Conversation
    timing: list[Issue]
    outcome: Any
    redactions: dict
    vad_skipped: str | None = None
    withheld: dict = field(default_factory=dict)


async def judge_one(conv: Conversation, cfg: AnnotateConfig, rd: RunDir, judge, vad) -> Judged:
    """VAD (when configured), the timing rules and the content judge on one conversation."""
    skipped = None
    try:
        vad_segs = _vad_segments(conv, cfg, rd, vad)
    except BadInput as e:
        log.warning("%s: VAD skipped (%s)", conv.id, e)
        skipped, vad_segs = e.reason, None
    reps = replies(conv, cfg.rules.segment_gap)
    timing = run_rules(conv, cfg.rules.enabled, cfg.rules, vad_segs, reps)
    outcome = await judge.judge(conv, reps) if judge is not None else None
    # this conversation's own count: other conversations are judged meanwhile
    red = dict(getattr(outcome, "redactions", None) or {})
    held = dict(getattr(outcome, "withheld", None) or {})
    return Judged(conv, list(timing), outcome, red, skipped, held)


def _record(j: Judged, out: ManifestWriter, progress: ManifestWriter, failures: list[dict],
            stats: StageStats, digest: str) -> None:
    """Write one conversation's findings (in conversation order) and count them."""
    conv, timing, outcome, red = j.conversation, j.timing, j.outcome, j.redactions
    if j.vad_skipped is not None:
        stats.add(f"vad_skipped/{j.vad_skipped}")
    issues: list[Issue] = list(timing)
    n_replies = 0
    if outcome is not None:
        issues += outcome.issues
        n_replies = len(outcome.verdicts)
        for f in outcome.failures:
            failures.append({"conversation_id": conv.id, **f.to_dict()})
            stats.add(f"judge_failures/{f.kind}")
    for iss in issues:
        out.write(iss)
    stats.add("replies/judged", n_replies)
    if outcome is None or not outcome.failures:
        progress.write({"id": conv.id, "digest": digest, "issues": len(issues),
                        "replies": n_replies, "redactions": red, "withheld": j.withheld})
        stats.add("conversations/annotated")
    else:
        stats.add("conversations/failed")
    out.flush()
    progress.flush()


class AnnotateWorker:
    """The per-conversation work of annotate on the ray engine: holds the VAD model and the
    judge (whose LLM calls go to the HTTP endpoint `endpoint`, one shared deployment such as
    vLLM or Ray Serve, or the local server the driver started) and runs `judge_one`.

    Args:
        cfg: the stage options.
        root: the run directory.
        endpoint: the judge's endpoint with its URL (None for judges without an LLM).
    """

    def __init__(self, cfg: AnnotateConfig, root: str, endpoint: Any):
        self.cfg, self.rd = cfg, RunDir(root, create=False)
        self._stack = ExitStack()
        self.judge = None
        if cfg.judge != "none":
            llm = cfg.llm if endpoint is None else endpoint
            self.judge = open_judge(cfg.judge, llm, self._stack, self.rd.path("judge_cache"))
        self.vad = _make_vad(cfg)

    def __call__(self, conv: Conversation) -> Judged:
        """Judge one conversation."""
        return asyncio.run(judge_one(conv, self.cfg, self.rd, self.judge, self.vad))


def _make_vad(cfg: AnnotateConfig) -> Any:
    if not cfg.vad:
        return None
    from duplexalign.speech.base import VAD_BACKENDS

    return VAD_BACKENDS.get(cfg.vad)()


def _summarise(rd: RunDir, stats: StageStats, failures: list[dict]) -> None:
    """Counts over the whole annotations file (this run and earlier ones)."""
    reasons: dict[str, Counter] = {}
    for d in iter_dicts(rd.path(ANNOTATIONS)):
        stats.add(f"issues/{d['kind']}/{d['category']}")
        key = d["reason"].split(" (")[0] if d["kind"] == "timing" else d["reason"]
        reasons.setdefault(d["category"], Counter())[key[:80]] += 1
    red: Counter = Counter()
    done = 0
    held: Counter = Counter()
    for d in iter_dicts(rd.path(PROGRESS)):
        done += 1
        red.update(d.get("redactions") or {})
        held.update(d.get("withheld") or {})
    for k, v in red.items():
        stats.add(f"redactions/{k}", v)
    for k, v in held.items():  # user speech addressed to the judge (judges/injection.py)
        stats.add(f"injection_withheld/{k}", v)
    stats.values["conversations_done"] = done
    stats.values["judge_failures_pending"] = len(failures)
    if failures:
        first = failures[0]
        stats.values["first_failure"] = " ".join(
            f"{first.get('kind')}: {first.get('detail', '')}".split())[:300]
    stats.values["top_reasons"] = {c: dict(r.most_common(5)) for c, r in sorted(reasons.items())}
