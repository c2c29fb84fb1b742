"""The pairs stage: annotated conversations -> preference pairs with window audio.

Owns the orchestration: read RUN/conversations.jsonl.gz and RUN/annotations.jsonl.gz, turn each
conversation's issues into candidates (policy.py), build each with its strategy, check the invariant,
filter (filters.py), write the two window waveforms to RUN/pairs/audio/<pair_id>/{chosen,rejected}.wav
and the built pair to RUN/pairs/candidates.jsonl.gz, every drop with its reason to
RUN/pairs/dropped.jsonl.gz, and finally the mix (filters.mix) to RUN/pairs.jsonl.gz. Resumable: built
and dropped candidates are skipped on rerun, and a finished stage with the same config and inputs is a
no-op (`runs.StageRun`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from duplexalign.errors import BadInput, JudgeError
from duplexalign.manifest import ManifestWriter, iter_dicts, read_manifest, write_manifest
from duplexalign.pairs.base import STRATEGIES, Built, PairEnv, Rewriter
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.filters import PairFilter, mix
from duplexalign.pairs.policy import candidates, check_invariant, iter_by_conversation
from duplexalign.records import Conversation, Issue, PreferencePair
from duplexalign.runs import ANNOTATIONS, CONVERSATIONS, PAIRS, RunDir, StageRun, StageStats

log = logging.getLogger(__name__)

STAGE = "pairs"
CANDIDATES = "pairs/candidates.jsonl.gz"
DROPPED = "pairs/dropped.jsonl.gz"


def make_rewriter(cfg: PairsConfig) -> Rewriter | None:
    """The judges' rewriter built from `cfg.rewriter` (client options), or None."""
    if cfg.rewriter is None:
        return None
    from duplexalign.judges.llm import LLMClient
    from duplexalign.judges.rewriter import Rewriter as JudgeRewriter

    return JudgeRewriter(LLMClient(**cfg.rewriter))


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


def run(cfg: PairsConfig, run_dir: str | Path, rewriter: Rewriter | None = None,
        voice: Callable[[str], Any] | None = None) -> StageStats:
    """Build the preference pairs of a run directory.

    Args:
        cfg: stage options.
        run_dir: the run directory (with conversations.jsonl.gz and annotations.jsonl.gz).
        rewriter: LLM rewriter; None builds one from `cfg.rewriter` (or none at all).
        voice: voice name -> TTS; None = `speech.voices.get_voice`.

    Returns:
        The stage statistics (also written to RUN/stats.json under "pairs").
    """
    pending = RunDir(run_dir, create=False).read_stats().get("annotate", {}).get(
        "judge_failures_pending")
    st = StageRun(STAGE, cfg, run_dir, inputs=(CONVERSATIONS, ANNOTATIONS), needs="annotate",
                  why=f"{pending} judge failures pending" if pending else "it did not finish")
    if (prev := st.previous()) is not None:
        return prev
    rd, stats = st.rd, st.stats
    conv_path, ann_path = rd.path(CONVERSATIONS), rd.path(ANNOTATIONS)
    if voice is None:
        from duplexalign.speech.voices import get_voice as voice
    rewriter = rewriter if rewriter is not None else make_rewriter(cfg)
    by_conv = iter_by_conversation(read_manifest(ann_path, Issue))
    cand_w = ManifestWriter(rd.path(CANDIDATES), resume=True)
    drop_w = ManifestWriter(rd.path(DROPPED), resume=True)
    flt = PairFilter(cfg)
    for d in iter_dicts(rd.path(CANDIDATES)):
        flt.remember(PreferencePair.model_validate(d))

    def drop(item: str, conv_id: str, reason: str, detail: str = "") -> None:
        drop_w.write({"id": item, "conversation_id": conv_id, "reason": reason, "detail": detail})

    try:
        for conv in tqdm(read_manifest(conv_path, Conversation), desc="pairs", unit="conv",
                         disable=None):
            issues = by_conv.get(conv.id)
            if not issues:
                continue
            cands, drops = candidates(conv, issues, cfg)
            for item, reason, detail in drops:
                drop(item, conv.id, reason, detail)
            env = PairEnv(conv, cfg, _model_audio(rd, conv), voice, rewriter)
            for cand in cands:
                if cand.id in cand_w or cand.id in drop_w:
                    continue
                try:
                    built = STRATEGIES.get(cand.strategy)(cand, env)
                except BadInput as e:
                    drop(cand.id, conv.id, e.reason, e.detail)
                    continue
                except JudgeError as e:
                    why = getattr(e, "reason", "") or type(e).__name__
                    drop(cand.id, conv.id, f"rewriter_failed:{why}", str(e))
                    continue
                bad = check_invariant(built.pair, cfg.max_context_frames)
                if bad:  # a bug, not bad data: keep the evidence, never write the pair
                    log.error("pair %s violates the invariant: %s", cand.id, bad)
                    drop(cand.id, conv.id, "invariant_violated", "; ".join(bad))
                    continue
                verdict = flt.check(built.pair, conv)
                if verdict is not None:
                    drop(cand.id, conv.id, *verdict)
                    continue
                _write_audio(rd, built)
                cand_w.write(built.pair)
            cand_w.flush()
            drop_w.flush()
    except BaseException:
        cand_w.abort()
        drop_w.abort()
        raise
    cand_w.close()
    drop_w.close()

    built_pairs = list(read_manifest(rd.path(CANDIDATES), PreferencePair))
    kept, mixed_out = mix(built_pairs, cfg.mix, cfg.seed)
    write_manifest(rd.path(PAIRS), kept)
    stats.add("built", len(built_pairs))
    stats.add("written", len(kept))
    for p in kept:
        stats.add(f"written/strategy/{p.strategy}")
        stats.add(f"written/category/{p.category}")
    for p in mixed_out:
        stats.add(f"dropped/mix_over_target/{p.category}")
    st.count_drops(DROPPED)
    stats.values["mix"] = cfg.mix
    st.finish()
    log.info("pairs: %d written of %d built", len(kept), len(built_pairs))
    return stats
