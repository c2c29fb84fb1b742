"""The pairs stage: annotated conversations -> preference pairs with window audio.

Owns the orchestration: walk RUN/conversations.jsonl.gz and merge-join RUN/annotations.jsonl.gz
(written in conversation order) one conversation at a time, turn each conversation's issues into
candidates grouped by `reply_id` (policy.py), build each with its strategy, check the invariant,
filter (filters.py: the checks of one pair alone run in the engine's workers, those against the
conversation's earlier pairs here), apply the human review decisions (reviewed.py,
`pairs.review`), write the two window waveforms to RUN/pairs/audio/<pair_id>/{chosen,rejected}.wav
(the engine's workers write them as they build; the driver deletes those of a pair it drops) and
the built pair to RUN/pairs/candidates.jsonl.gz, every drop with its reason to RUN/pairs/dropped.jsonl.gz, and finally the mix (filters.mix) to
RUN/pairs.jsonl.gz. Memory holds one conversation (plus the ids the writers skip on resume).
Resumable: built and dropped candidates are skipped on rerun, and a finished stage with the same
config and inputs is a no-op (`runs.StageRun`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tqdm import tqdm

from duplexalign.engine import digested, ordered_map
from duplexalign.errors import BackendUnavailable, BadInput, JudgeError
from duplexalign.manifest import (
    GroupReader,
    ManifestWriter,
    iter_dicts,
    read_manifest,
    write_manifest,
)
from duplexalign.pairs.base import STRATEGIES, Built, Candidate, PairEnv, Rewriter
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.filters import PairFilter, PairKey, mix_ids, pair_key, pair_verdict
from duplexalign.pairs.policy import candidates, check_invariant
from duplexalign.pairs.reviewed import load_review, review_inputs
from duplexalign.records import Conversation, Issue, PreferencePair
from duplexalign.runs import ANNOTATIONS, CONVERSATIONS, PAIRS, RunDir, StageRun, StageStats

if TYPE_CHECKING:
    from duplexalign.judges.endpoint import LLMEndpoint

log = logging.getLogger(__name__)

STAGE = "pairs"
CANDIDATES = "pairs/candidates.jsonl.gz"
DROPPED = "pairs/dropped.jsonl.gz"


def rewriter_endpoint(cfg: PairsConfig, rd: RunDir) -> LLMEndpoint:
    """`pairs.rewriter`, else the endpoint annotate judged with (RUN/provenance.json), else the
    local server's defaults."""
    from duplexalign.annotate.stage import judged_with  # the judge stack: only the driver needs it
    from duplexalign.judges.endpoint import LLMEndpoint

    if cfg.rewriter is not None:
        return cfg.rewriter
    llm = judged_with(rd)
    return llm.endpoint() if llm is not None else LLMEndpoint()


class LazyRewriter:
    """The judges' rewriter over an endpoint, connected (and the local server started) on its
    first call, so a run whose pairs all have an improved reply starts nothing. When the local
    server is not installed, every call raises `BadInput("rewriter_unavailable")` (the pair is
    dropped with that reason and the install hint).

    Args:
        endpoint: the LLM endpoint.
        stack: owns the local server, when one is started (None: its own, never closed; for an
            endpoint with a URL, where nothing is started).
        cache_dir: the answer cache when the endpoint names none.
    """

    def __init__(self, endpoint: LLMEndpoint, stack: ExitStack | None, cache_dir: Path):
        self.endpoint, self.stack, self.cache_dir = endpoint, stack or ExitStack(), cache_dir
        self._rw: Rewriter | None = None
        self._unavailable: BackendUnavailable | None = None

    def _get(self) -> Rewriter:
        if self._unavailable is not None:
            raise BadInput("rewriter_unavailable", str(self._unavailable))
        if self._rw is None:
            from duplexalign.judges.endpoint import open_client
            from duplexalign.judges.rewriter import Rewriter as JudgeRewriter

            try:
                client = open_client(self.endpoint, self.stack, self.cache_dir)
            except BackendUnavailable as e:
                log.warning("pairs: no rewriter (%s); pairs that need one are dropped", e)
                self._unavailable = e
                raise BadInput("rewriter_unavailable", str(e)) from e
            self._rw = JudgeRewriter(client)
        return self._rw

    def rewrite(self, context: list[tuple[str, str]], problems: list[str], bad_reply: str) -> str:
        """See `pairs.base.Rewriter.rewrite`."""
        return self._get().rewrite(context, problems, bad_reply)

    def write_reply(self, context: list[tuple[str, str]]) -> str:
        """See `pairs.base.Rewriter.write_reply`."""
        return self._get().write_reply(context)


def _model_audio(rd: RunDir, conv: Conversation) -> Callable[[], Any]:
    def load():
        from duplexalign.speech.audio import read_audio

        if conv.audio.model is None:
            raise BadInput("model_audio_missing", "the conversation has no model-channel audio")
        return read_audio(rd.resolve(conv.audio.model))

    return load


def _write_audio(rd: RunDir, built: Built) -> None:
    from duplexalign.speech.audio import write_audio

    for variant, wav in ((built.pair.chosen, built.chosen_wav),
                         (built.pair.rejected, built.rejected_wav)):
        assert variant.audio is not None
        write_audio(rd.resolve(variant.audio), wav)


def _remove_audio(rd: RunDir, audio: list[str]) -> None:
    """Delete the window wavs (run-relative paths) a worker wrote for a pair the driver then
    dropped."""
    for path in audio:
        rd.resolve(path).unlink(missing_ok=True)
    for folder in {rd.resolve(path).parent for path in audio}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


class Kept(NamedTuple):
    """A pair a worker built, checked (`check_invariant`, `filters.pair_verdict`) and wrote the
    wavs of, as the driver needs it: its manifest record already dumped (plain data travels back
    and is written as is, far cheaper than the model), what `PairFilter.admit` checks, and the
    wavs to delete if the driver drops it."""

    record: dict[str, Any]
    key: PairKey
    window: tuple[float, float]
    audio: list[str]


@dataclass(frozen=True)
class _ConversationStart:
    """Marks where a conversation's candidates begin in the engine's stream (never sent to a
    worker): the driver resets its filter and writes the policy's drops here."""

    conversation: Conversation
    built_before: list[PreferencePair]
    drops: list[tuple[str, str, str]]


class PairsWorker:
    """The per-candidate work of pairs, run on the engine: build the candidate with its strategy
    (TTS in the model's voice, the rewriter's HTTP calls), check the pair on its own (the
    invariant, `filters.pair_verdict`) and write its two window wavs to
    RUN/pairs/audio/<pair id>/ (a path fixed by the pair id, so a retried or resumed candidate
    writes the same bytes to the same files). Everything that needs no other pair happens here,
    so the workers share it; the driver's serial share per pair is what needs the pairs before it.
    Returns `(candidate id, Kept)`, or `(candidate id, (reason, detail))` when it is dropped (the
    id only: a candidate holds its whole conversation, which need not travel back). It writes no
    manifest line (the driver checks the pair against the conversation's earlier ones, writes in
    order, and deletes the wavs of a pair it drops). Consecutive candidates of one conversation
    share its `PairEnv` (the logged audio is loaded once).

    Args:
        cfg: the stage options.
        root: the run directory (its audio is read from there).
        voice: voice name -> TTS (`speech.voices.get_voice`).
        rewriter: the LLM rewriter (picklable for the ray engine; see `_worker_rewriter`).
    """

    def __init__(self, cfg: PairsConfig, root: str, voice: Callable[[str], Any],
                 rewriter: Rewriter | None):
        self.cfg, self.rd, self.voice, self.rewriter = cfg, RunDir(root, create=False), voice, \
            rewriter
        self._env: PairEnv | None = None

    def __call__(self, cand: Candidate) -> tuple[str, Kept | tuple[str, str]]:
        """Build one candidate, check it and write its wavs."""
        conv = cand.conversation
        if self._env is None or self._env.conversation.id != conv.id:
            self._env = PairEnv(conv, self.cfg, _model_audio(self.rd, conv), self.voice,
                                self.rewriter)
        try:
            built = STRATEGIES.get(cand.strategy)(cand, self._env)
            pair = built.pair
            bad = check_invariant(pair, self.cfg.max_context_frames)
            if bad:  # a bug, not bad data: keep the record as evidence, never write the pair
                log.error("pair %s violates the invariant: %s", cand.id, bad)
                return cand.id, ("invariant_violated", "; ".join(bad))
            verdict = pair_verdict(pair, conv, self.cfg)
            if verdict is not None:
                return cand.id, verdict
            _write_audio(self.rd, built)
            audio = [v.audio for v in (pair.chosen, pair.rejected) if v.audio is not None]
            return cand.id, Kept(pair.model_dump(mode="json"), pair_key(pair), pair.window, audio)
        except BadInput as e:
            return cand.id, (e.reason, e.detail)
        except JudgeError as e:
            why = getattr(e, "reason", "") or type(e).__name__
            return cand.id, (f"rewriter_failed:{why}", str(e))


class _Unavailable:
    """The rewriter of ray workers when the driver could not start the local LLM server."""

    def __init__(self, why: str):
        self.why = why

    def rewrite(self, context, problems, bad_reply) -> str:
        raise BadInput("rewriter_unavailable", self.why)

    def write_reply(self, context) -> str:
        raise BadInput("rewriter_unavailable", self.why)


def _worker_rewriter(cfg: PairsConfig, rd: RunDir, rewriter: Rewriter | None,
                     stack: ExitStack) -> Rewriter | None:
    """The rewriter the workers use. The local engine (or a rewriter given by the caller, such as
    the sandbox oracle) uses it as is. On ray, the default one talks to an endpoint by URL: with
    none configured, the driver starts the local server here (once, for every worker) and the
    workers reach it at its 127.0.0.1 URL; on a multi-node cluster give `pairs.rewriter.url`
    (a vLLM / Ray Serve / llama-server deployment every node can reach)."""
    if rewriter is not None:
        return rewriter
    ep = rewriter_endpoint(cfg, rd)
    if cfg.engine.kind == "local":
        return LazyRewriter(ep, stack, rd.path("judge_cache"))
    if ep.url is None:
        from duplexalign.judges.endpoint import open_client

        try:
            client = open_client(ep, stack, rd.path("judge_cache"))
        except BackendUnavailable as e:
            log.warning("pairs: no rewriter (%s); pairs that need one are dropped", e)
            return _Unavailable(str(e))
        ep = ep.model_copy(update={"url": client.base_url, "model": client.model})
    return LazyRewriter(ep, None, rd.path("judge_cache"))


def run(cfg: PairsConfig, run_dir: str | Path, rewriter: Rewriter | None = None,
        voice: Callable[[str], Any] | None = None) -> StageStats:
    """Build the preference pairs of a run directory.

    Args:
        cfg: stage options.
        run_dir: the run directory (with conversations.jsonl.gz and annotations.jsonl.gz).
        rewriter: LLM rewriter; None uses `rewriter_endpoint` (connected on first use).
        voice: voice name -> TTS; None = `speech.voices.get_voice`.

    Returns:
        The stage statistics (also written to RUN/stats.json under "pairs").
    """
    pending = RunDir(run_dir, create=False).read_stats().get("annotate", {}).get(
        "judge_failures_pending")
    st = StageRun(STAGE, cfg, run_dir, inputs=(CONVERSATIONS, ANNOTATIONS), needs="annotate",
                  why=f"{pending} judge failures pending" if pending else "it did not finish",
                  extra_inputs=lambda: review_inputs(Path(run_dir), cfg.review),
                  digested=digested(cfg))
    if (prev := st.previous()) is not None:
        return prev
    rd, stats = st.rd, st.stats
    review = load_review(rd.root, cfg.review)
    if review.active and rd.path(DROPPED).exists():  # review drops are decided afresh each run
        write_manifest(rd.path(DROPPED), (d for d in iter_dicts(rd.path(DROPPED))
                                          if not str(d.get("reason", "")).startswith("review_")))
    current: set[str] = set()  # ids of the candidates the decisions allow now
    conv_path, ann_path = rd.path(CONVERSATIONS), rd.path(ANNOTATIONS)
    if voice is None:
        from duplexalign.speech.voices import get_voice as voice
    stack = ExitStack()
    _check_issue_format(ann_path)
    by_conv = GroupReader(read_manifest(ann_path, Issue), key=lambda i: i.conversation_id)
    # pairs built by an earlier run, replayed into each conversation's filter
    built_before = GroupReader(read_manifest(rd.path(CANDIDATES), PreferencePair),
                               key=lambda p: p.conversation_id)
    cand_w = ManifestWriter(rd.path(CANDIDATES), resume=True)
    drop_w = ManifestWriter(rd.path(DROPPED), resume=True)

    def drop(item: str, conv_id: str, reason: str, detail: str = "") -> None:
        drop_w.write({"id": item, "conversation_id": conv_id, "reason": reason, "detail": detail})

    def work():
        """Per conversation: a `_ConversationStart` (driver only), then its candidates still to
        build (the engine's items)."""
        for conv in tqdm(read_manifest(conv_path, Conversation), desc="pairs", unit="conv",
                         disable=None):
            issues, edits, review_drops = review.filter_issues(by_conv.take(conv.id))
            cands, drops = candidates(conv, issues, cfg, edits) if issues else ([], [])
            current.update(c.id for c in cands)
            before = [p for p in built_before.take(conv.id)
                      if not review.active or p.id in current]
            drops = [(f"{item}@review", why, detail) for item, why, detail in review_drops] + drops
            if not issues and not drops:
                continue
            yield _ConversationStart(conv, before, drops)
            yield from (c for c in cands if c.id not in cand_w and c.id not in drop_w)

    try:
        make = partial(PairsWorker, cfg, str(rd.root), voice,
                       _worker_rewriter(cfg, rd, rewriter, stack))
        flt: PairFilter | None = None
        for res in ordered_map(cfg.engine, make, work(), desc="pairs",
                               skip=lambda x: isinstance(x, _ConversationStart)):
            if isinstance(res, _ConversationStart):
                cand_w.flush()
                drop_w.flush()
                conv = res.conversation
                flt = PairFilter(cfg)
                for p in res.built_before:
                    flt.remember(p)
                for item, reason, detail in res.drops:
                    drop(item, conv.id, reason, detail)
                continue
            cand_id, kept = res
            if cand_id in cand_w:
                continue
            if cand_id in drop_w:
                if isinstance(kept, Kept):
                    _remove_audio(rd, kept.audio)
                continue
            if not isinstance(kept, Kept):
                drop(cand_id, conv.id, *kept)
                continue
            assert flt is not None
            verdict = flt.admit(kept.key, kept.window)
            if verdict is not None:
                _remove_audio(rd, kept.audio)
                drop(cand_id, conv.id, *verdict)
                continue
            cand_w.write(kept.record)
        cand_w.flush()
        drop_w.flush()
        for i in by_conv.rest():
            drop(i.id, i.conversation_id, "issue_out_of_order",
                 "annotations.jsonl.gz is not in conversation order here (or names a "
                 "conversation that is not in conversations.jsonl.gz): rerun annotate")
    except BaseException:
        cand_w.abort()
        drop_w.abort()
        raise
    finally:
        stack.close()
    cand_w.close()
    drop_w.close()

    unreviewed: dict[str, str] = {}  # built pair id -> why the review leaves it out
    if review.active:
        for d in iter_dicts(rd.path(CANDIDATES)):
            why = (("review_superseded", "") if d["id"] not in current
                   else review.pair_verdict(d["id"]))
            if why is not None:
                unreviewed[d["id"]] = why[0]
    built = ((d["id"], d["category"]) for d in iter_dicts(rd.path(CANDIDATES))
             if d["id"] not in unreviewed)
    keep = mix_ids(built, cfg.mix, cfg.seed)
    with ManifestWriter(rd.path(PAIRS), resume=False) as out:
        for p in read_manifest(rd.path(CANDIDATES), PreferencePair):
            stats.add("built")
            if p.id in unreviewed:
                stats.add(f"dropped/{unreviewed[p.id]}")
            elif p.id in keep:
                out.write(p)
                stats.add("written")
                stats.add(f"written/strategy/{p.strategy}")
                stats.add(f"written/category/{p.category}")
            else:
                stats.add(f"dropped/mix_over_target/{p.category}")
    stats.counts.setdefault("written", 0)
    stats.counts.setdefault("built", 0)
    st.count_drops(DROPPED)
    stats.values["mix"] = cfg.mix
    st.finish()
    log.info("pairs: %d written of %d built", stats.counts["written"], stats.counts["built"])
    return stats


def _check_issue_format(path: Path) -> None:
    """One clear line when the annotations predate reply ids (issue format 1)."""
    first = next(iter_dicts(path), None)
    if first is not None and "reply_id" not in first:
        raise BadInput("old_annotations",
                       f"{path} was written by duplexalign before reply ids (issue format 1): "
                       "rerun `duplexalign annotate` on this run to annotate it again")
