"""Environments of online training: fixed user streams to roll the policy out against, and scoring.

Owns `Environment` (the user streams as `evaluate.rollout.UserItem`s, the text tokenizer that turns
a rollout's text stream into timed words, and the content judge), how a rollout becomes a
`Conversation` (the model's new words, the user's fixed words and meta) and is scored
(`train.rewards`; content by the judge `content_judge` opens: any registered content judge, the
LLM one with the annotate stage's client, prompt, cache and local server), and the environment a team gets without a simulator: **replaying the user channel
of logged conversations** (`replay_environment`: a run's ingested conversations; the user's audio is
read from the log, or rebuilt by TTS from the user's words as the streams stage does, and encoded with
the codec; the model's new timing is scored against the user's logged words). The sandbox's simulated
users are built in `sandbox/environment.py`. It knows nothing about the loss.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.errors import ConfigError
from duplexalign.records import ChannelWords, Conversation, Source
from duplexalign.train.rewards import (
    RewardConfig,
    collapse_checks,
    flag_costs,
    judge_outcomes,
    turn_terms,
)

if TYPE_CHECKING:
    from duplexalign.judges.content import LLMJudgeConfig

log = logging.getLogger(__name__)

CONVERSATIONS = "conversations.jsonl.gz"


class ReplayConfig(StageConfig):
    """What replaying logged users needs (section `train.grpo.replay`; the sandbox fills it in)."""

    codec: str = "melrvq"
    """Codec registry name (as `streams.codec`)."""
    codec_path: str | None = None
    """Local codec file (as `streams.codec_path`)."""
    tokenizer: str | None = None
    """SentencePiece `.model` of the model's text stream (as `streams.tokenizer`)."""
    user_voice: str = "user_0"
    """Voice that rebuilds a user channel whose audio was not kept (as `streams.user_voice`)."""
    turn_gap: float = Field(0.8, gt=0.0)
    """Silence (s) separating user turns for the rebuild (as `streams.turn_gap`)."""
    max_conversations: int = Field(0, ge=0)
    """Replay only the first N conversations (0 = all)."""


@dataclass
class Environment:
    """User streams to roll out against.

    Attributes:
        name: what the environment is ("replay:<run>", "sandbox:train:<seed>").
        items: the fixed user streams (`UserItem`: user codes [K, T], user words, meta).
        tokenizer: SentencePiece-like tokenizer of the model's text stream.
        skipped: conversations left out, by reason (their ids are in the log).
    """

    name: str
    items: list
    tokenizer: Any
    skipped: dict[str, int] = field(default_factory=dict)

    def digest(self) -> str:
        """Digest of the environment's identity (name and item ids), for the stage digest."""
        h = hashlib.sha256(self.name.encode())
        for it in self.items:
            h.update(it.id.encode() + b"\0")
        return h.hexdigest()[:16]


def as_conversation(r: Any) -> Conversation:
    """A rollout (`evaluate.rollout.Rollout`) as a conversation: the model's words from its text
    stream, the user's fixed words, the duration and the user side's meta."""
    return Conversation(id=r.id, words=ChannelWords(model=r.model_words, user=r.item.user_words),
                        duration=r.duration, source=Source(reader="rollout", path=r.id, digest=""),
                        meta=r.item.meta)


def score_rollouts(rollouts: Sequence[Any], cfg: RewardConfig, judge: Any | None = None,
                   per_turn: bool = False) -> list[dict[str, Any]]:
    """Reward terms and collapse checks of each rollout (terms by name, checks under `check/`).

    `judge` (`async judge(conv, reps)`, all rollouts judged concurrently) gives the `content`
    term and, under `judge/`, the replies it graded and flagged and its failed calls; a rollout
    with a failed call gets no `content` term (see `rewards.group_totals`). None leaves content
    out. `per_turn` adds the terms split by user turn under "turns" (`rewards.TurnTerms`).
    """
    convs = [as_conversation(r) for r in rollouts]
    outcomes = judge_outcomes(judge, convs) if judge is not None else [None] * len(convs)
    out = []
    for c, o, r in zip(convs, outcomes, rollouts, strict=True):
        costs = None if o is None else flag_costs(o, cfg.category_weights)
        split = turn_terms(c, cfg, costs)
        terms = split.mean()
        checks = collapse_checks(c, r.text_tokens, cfg.repetition_n)
        row: dict[str, Any] = {**terms, **{f"check/{k}": v for k, v in checks.items()}}
        if per_turn:
            row["turns"] = split
        if o is not None:
            row.update({"judge/replies": float(len(o.verdicts)),
                        "judge/flagged": float(sum(1 for v in o.verdicts if v.flagged)),
                        "judge/failed_calls": float(len(o.failures))})
        out.append(row)
    return out


def content_judge(name: str, llm: LLMJudgeConfig | None, stack: ExitStack,
                  cache_dir: str | Path | None = None) -> Any | None:
    """The content judge registered as `name` ("none" = no judge), opened as the annotate stage
    opens its own (`judges.endpoint.open_judge`): the LLM judge gets a client for `llm` (None =
    `LLMJudgeConfig()`'s defaults), and without `llm.url` the local server is started and stays up
    until `stack` closes.

    Args:
        name: registry name of the judge (`train.grpo.judge`).
        llm: endpoint and judge options (`train.grpo.llm`, resolved by `grpo.run`).
        stack: owns the local server's lifetime.
        cache_dir: the answer cache when `llm.cache_dir` is None.
    """
    if name == "none":
        return None
    from duplexalign.judges.content import LLMJudgeConfig
    from duplexalign.judges.endpoint import open_judge

    return open_judge(name, llm if llm is not None else LLMJudgeConfig(), stack, cache_dir)


def replay_environment(run_dir: str | Path, cfg: ReplayConfig, progress: bool = True
                       ) -> Environment:
    """Replay the user channel of `RUN/conversations.jsonl.gz`.

    Each conversation's user audio comes from the log (`audio.user`), else from the streams
    stage's rebuilt copy (`RUN/streams/user_audio/`), else is rebuilt by TTS from the user's words;
    it is encoded with the codec over the conversation's duration. A conversation whose audio
    cannot be read is skipped with a logged reason.

    Raises:
        ConfigError: no tokenizer configured, no conversations, or none could be replayed.
    """
    from tqdm import tqdm

    from duplexalign.errors import BadInput
    from duplexalign.evaluate.rollout import UserItem
    from duplexalign.manifest import read_manifest
    from duplexalign.runs import RunDir
    from duplexalign.streams.audio import encode, load_codec
    from duplexalign.streams.stage import user_audio
    from duplexalign.streams.tokenizer import load_tokenizer
    from duplexalign.timebase import num_frames

    if cfg.tokenizer is None:
        raise ConfigError("train.grpo.replay.tokenizer: path of the model's SentencePiece .model "
                          "is required to replay logged users")
    rd = RunDir(run_dir)
    path = rd.path(CONVERSATIONS)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run `duplexalign ingest` first")
    tok, codec = load_tokenizer(cfg.tokenizer), load_codec(cfg.codec, cfg.codec_path)
    items, skipped = [], Counter()
    for k, conv in enumerate(tqdm(read_manifest(path, Conversation), desc="replay users",
                                  disable=not progress)):
        if cfg.max_conversations and k >= cfg.max_conversations:
            break
        try:
            wav = user_audio(rd, conv, cfg.user_voice, cfg.turn_gap, keep=False)
        except BadInput as e:
            log.warning("replay: skipped %s (%s)", conv.id, e)
            skipped[e.reason] += 1
            continue
        codes = encode(codec, wav, num_frames(conv.duration))
        items.append(UserItem(id=conv.id, user_codes=codes, user_words=list(conv.words.user),
                              meta=conv.meta, user_wav=wav))
    if not items:
        raise ConfigError(f"replay: no conversation of {path} could be replayed "
                          f"(skipped: {dict(skipped)})")
    return Environment(name=f"replay:{Path(run_dir).name}", items=items, tokenizer=tok,
                       skipped=dict(skipped))
