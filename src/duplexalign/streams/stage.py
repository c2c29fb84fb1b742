"""The streams stage: preference pairs -> token shards a trainer reads (RUN/streams/).

Owns the orchestration: for each conversation that has pairs, encode the logged model channel and the
user channel (kept audio, or rebuilt by TTS from the user's words at their times) once, build the logged
text row, store the conversation's tensor `[1 + 2K, T]` once per shard, then each pair's two variants
(`[1 + K, W]`: text + model codes inside the window) through `shards.ShardWriter`. Rejected variants
that are the logged audio reuse the logged codes exactly; other variants are encoded from their window
audio. Writes `streams/meta.json` (codec, K, cardinality, text_card, tokenizer) and drops with reasons
to `streams/dropped.jsonl.gz`. Pairs (written in conversation order) are merge-joined with the
conversations, so memory holds one conversation's pairs. Resumable: pairs already in the index are
skipped.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from duplexalign.config import StageConfig
from duplexalign.engine import EngineConfig, digested, ordered_map
from duplexalign.errors import BadInput, ConfigError
from duplexalign.manifest import GroupReader, ManifestWriter, iter_dicts, read_manifest
from duplexalign.records import Conversation, PreferencePair
from duplexalign.runs import CONVERSATIONS, PAIRS, RunDir, StageRun, StageStats, atomic_write_text
from duplexalign.streams.audio import encode, encode_window, load_codec, rebuild_user_audio
from duplexalign.streams.build import (
    DEFAULT_FLOOR_GAP,
    conversation_codes,
    floor_labels,
    variant_rows,
    variant_text,
)
from duplexalign.streams.layout import Layout
from duplexalign.streams.shards import PairIndex, ShardWriter
from duplexalign.streams.tokenizer import load_tokenizer
from duplexalign.text import safe_id
from duplexalign.timebase import SAMPLES_PER_FRAME, num_frames, seconds_to_frame

log = logging.getLogger(__name__)

STAGE = "streams"
OUT = "streams"


class StreamsConfig(StageConfig):
    """Options of the streams stage (section `streams:` of a preset)."""

    codec: str = "melrvq"
    """Codec registry name (`melrvq`, `mimi`)."""
    codec_path: str | None = None
    """Local file of the codec (MelRVQ .safetensors or Mimi weights)."""
    tokenizer: str | None = None
    """Local SentencePiece `.model` (Moshi's 32k one, or `duplexalign tokenizer fit`)."""
    user_voice: str = "user_0"
    """Voice that rebuilds the user channel when the user audio was not kept."""
    turn_gap: float = Field(0.8, gt=0.0)
    """Silence (s) separating user turns for the rebuild (one TTS call per turn)."""
    encode_margin: float = Field(2.0, ge=0.0)
    """Seconds of logged audio encoded before a variant window (codec left context)."""
    floor_gap: float = Field(DEFAULT_FLOOR_GAP, gt=0.0)
    """User silence (s) that ends a user turn for the floor labels; shorter pauses keep the floor
    (same as annotate's `rules.turn_end_silence`)."""
    max_shard_bytes: int = Field(256 << 20, gt=0)
    """Flush a shard once its tensors reach this size."""
    keep_user_audio: bool = True
    """Save rebuilt user channels to streams/user_audio/ (reused on resume and by export)."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """Where conversations are encoded (codec, user-channel TTS): `engine.py`."""


def run(cfg: StreamsConfig, run_dir: str | Path) -> StageStats:
    """Tokenize every pair of RUN/pairs.jsonl.gz into RUN/streams/ shards and index.

    Returns:
        The stage statistics (also in RUN/stats.json under "streams").
    """
    st = StageRun(STAGE, cfg, run_dir, inputs=(PAIRS, CONVERSATIONS), needs="pairs",
                  why="it did not finish", digested=digested(cfg))
    if cfg.tokenizer is None:
        raise ConfigError("streams.tokenizer: path of a SentencePiece .model is required "
                          "(`duplexalign tokenizer fit` makes a small one)")
    if (prev := st.previous()) is not None:
        return prev
    rd, stats = st.rd, st.stats
    pairs_path, conv_path = rd.path(PAIRS), rd.path(CONVERSATIONS)
    enc = Encoder(cfg, str(rd.root))  # the driver's own: meta, and the local engine's worker
    k = enc.k
    out = rd.path(OUT)
    writer = ShardWriter(out, max_bytes=cfg.max_shard_bytes)
    drops = ManifestWriter(out / "dropped.jsonl.gz", resume=True)
    by_conv = GroupReader(read_manifest(pairs_path, PreferencePair),
                          key=lambda p: p.conversation_id)
    text_stats: Counter = Counter()

    def work():
        for conv in tqdm(read_manifest(conv_path, Conversation), desc="streams", unit="conv",
                         disable=None):
            pairs = [p for p in by_conv.take(conv.id)
                     if not writer.has_pair(p.id) and p.id not in drops]
            if pairs:
                yield conv, pairs

    make = (lambda: enc) if cfg.engine.kind == "local" else partial(Encoder, cfg, str(rd.root))
    try:
        for conv, pairs, got in ordered_map(cfg.engine, make, work(), desc="streams"):
            if isinstance(got, BadInput):
                for p in pairs:
                    drops.write({"id": p.id, "conversation_id": conv.id, "reason": got.reason,
                                 "detail": got.detail})
                continue
            text_stats.update(got.text_stats)
            for entry, chosen, rejected, chosen_floor in got.pairs:
                writer.add_context(conv.id, got.context, got.floor)
                writer.add_pair(entry, chosen, rejected, chosen_floor)
        for p in by_conv.rest():
            if not writer.has_pair(p.id):
                drops.write({"id": p.id, "conversation_id": p.conversation_id,
                             "reason": "conversation_missing",
                             "detail": "pair's conversation is not in conversations.jsonl.gz "
                                       "(or pairs.jsonl.gz is not in conversation order)"})
        writer.close()
        drops.close()
    except BaseException:
        drops.abort()
        raise
    codec, tok = enc.codec, enc.tok
    meta = {"codec": cfg.codec, "codec_path": cfg.codec_path, "num_codebooks": k,
            "cardinality": int(codec.cardinality), "text_card": tok.vocab_size,
            "tokenizer": cfg.tokenizer, "layout_rows": Layout(k).num_rows,
            "floor_labels": True}
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2))
    for e in iter_dicts(out / "index.jsonl.gz"):
        stats.add("written")
        stats.add(f"written/category/{e['category']}")
        stats.add(f"frames/window/{e['category']}", e["window_end_frame"] - e["window_start_frame"])
    st.count_drops(f"{OUT}/dropped.jsonl.gz")
    for key, n in text_stats.items():
        stats.add(f"text/{key}", n)
    stats.values.update(meta)
    return st.finish()


def user_audio(rd: RunDir, conv: Conversation, voice: str, turn_gap: float,
               keep: bool = True) -> np.ndarray:
    """The user channel of `conv` at 24 kHz `[S]`: the logged audio, else the copy rebuilt
    earlier (`RUN/streams/user_audio/`), else rebuilt by TTS with `voice` (one call per user turn,
    turns split at `turn_gap` s) and, with `keep`, saved for the next call."""
    from duplexalign.speech.audio import read_audio, write_audio

    if conv.audio.user is not None:
        return read_audio(rd.resolve(conv.audio.user))
    cached = rd.path(f"{OUT}/user_audio/{safe_id(conv.id)}.wav")
    if cached.exists():
        return read_audio(cached)
    from duplexalign.speech.voices import get_voice

    wav = rebuild_user_audio(conv.words.user, conv.duration, get_voice(voice), turn_gap)
    if keep:
        write_audio(cached, wav)
    return wav


@dataclass
class Encoded:
    """One conversation's tensors, made by a worker and stored by the driver in order.

    Attributes:
        context: the conversation's codes `[1 + 2K, T]` int64.
        floor: its floor labels `[T]`.
        pairs: per pair: its index entry, chosen and rejected rows `[1 + K, W]` each, and the
            chosen variant's floor labels `[W]`.
        text_stats: counts of shifted words and cut tokens.
    """

    context: torch.Tensor
    floor: torch.Tensor
    pairs: list[tuple[PairIndex, torch.Tensor, torch.Tensor, torch.Tensor]]
    text_stats: Counter


class Encoder:
    """The per-conversation work of streams, run on the engine: holds the codec and tokenizer
    (loaded once per worker) and encodes a conversation and its pairs (`encode_conversation`).

    Args:
        cfg: the stage options.
        root: the run directory.
    """

    def __init__(self, cfg: StreamsConfig, root: str):
        self.cfg, self.rd = cfg, RunDir(root, create=False)
        self.tok = load_tokenizer(cfg.tokenizer)
        self.codec = load_codec(cfg.codec, cfg.codec_path)
        self.k = int(self.codec.num_codebooks)

    def __call__(self, item: tuple[Conversation, list[PreferencePair]]
                 ) -> tuple[Conversation, list[PreferencePair], Encoded | BadInput]:
        """`(conv, pairs)` -> the same with the `Encoded` tensors, or the BadInput that drops
        every pair of the conversation."""
        conv, pairs = item
        try:
            return conv, pairs, encode_conversation(self.cfg, self.rd, conv, pairs, self.tok,
                                                    self.codec, self.k)
        except BadInput as e:
            return conv, pairs, e


def encode_conversation(cfg: StreamsConfig, rd: RunDir, conv: Conversation,
                        pairs: list[PreferencePair], tok, codec, k: int) -> Encoded:
    """Encode one conversation (model and user channels, text row, floor labels) and its pairs'
    variants. Writes nothing but the rebuilt user audio cache (`_user_audio`).

    Raises:
        BadInput: missing or misfit audio (every pair of the conversation is dropped).
    """
    from duplexalign.speech.audio import read_audio

    text_stats: Counter = Counter()
    out: list[tuple[PairIndex, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    if conv.audio.model is None:
        raise BadInput("model_audio_missing", "no model-channel audio")
    model_wav = read_audio(rd.resolve(conv.audio.model))
    user_wav = user_audio(rd, conv, cfg.user_voice, cfg.turn_gap, cfg.keep_user_audio)
    t = max([num_frames(conv.duration)] + [seconds_to_frame(p.window[1]) for p in pairs])
    model_codes = encode(codec, model_wav, t)
    ctx, text = conversation_codes(conv.words.model, model_codes, encode(codec, user_wav, t), tok)
    text_stats.update({"shifted_words": text.shifted_words, "cut_tokens": text.cut_tokens})
    ctx_t = torch.from_numpy(ctx)
    floor = torch.from_numpy(floor_labels(conv.words.user, conv.words.model, t, cfg.floor_gap))
    margin = int(round(cfg.encode_margin * 12.5))
    for p in pairs:
        ws, we = seconds_to_frame(p.window[0]), seconds_to_frame(p.window[1])
        rows = []
        before = [w for w in conv.words.model if seconds_to_frame(w.start) < ws]
        chosen_floor = floor_labels(conv.words.user, before + list(p.chosen.words), we,
                                    cfg.floor_gap)[ws:we]
        for side, v in (("chosen", p.chosen), ("rejected", p.rejected)):
            txt, s = variant_text(conv.words.model, v.words, ws, we, tok)
            text_stats.update({"variant_shifted_words": s.shifted_words,
                               "variant_cut_tokens": s.cut_tokens})
            if side == "rejected" and p.rejected_source == "logged":
                codes = model_codes[:, ws:we]
            else:
                if v.audio is None:
                    raise BadInput("variant_audio_missing", f"{p.id} {side}")
                wav = read_audio(rd.resolve(v.audio))
                if len(wav) != (we - ws) * SAMPLES_PER_FRAME:
                    raise BadInput("variant_audio_length", f"{p.id} {side}: {len(wav)} samples")
                codes = encode_window(codec, model_wav, wav, ws, margin)
            rows.append(torch.from_numpy(variant_rows(txt, codes)))
        entry = PairIndex(
            id=p.id, conversation_id=conv.id, shard="", context_start_frame=seconds_to_frame(
                p.context_start), window_start_frame=ws, window_end_frame=we,
            category=p.category, strategy=p.strategy, num_codebooks=k,
            chosen_text_tokens=int(np.isin(rows[0][0].numpy(), (0, 3), invert=True).sum()),
            rejected_text_tokens=int(np.isin(rows[1][0].numpy(), (0, 3), invert=True).sum()))
        out.append((entry, rows[0], rows[1], torch.from_numpy(chosen_floor)))
    return Encoded(ctx_t, floor, out, text_stats)
