"""Pairs and streams throughput, measured side by side in one run.

Run: NO_TORCH_COMPILE=1 .venv/bin/python bench/pairs.py

Prints (1) pairs/s of pair assembly (strategy + window geometry + audio rendering) with a
pre-synthesised voice vs with the real espeak TTS, (2) frames/s of the text-stream builder with a real
SentencePiece tokenizer and its speed relative to real time (12.5 frames/s), and (3) disk bytes per
pair for shards with shared contexts vs every pair storing both full tensors (the ratio).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from duplexalign.pairs.base import STRATEGIES, PairEnv
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.policy import candidates
from duplexalign.records import (
    ChannelAudio,
    ChannelWords,
    Conversation,
    Issue,
    JudgeInfo,
    Source,
    Word,
)
from duplexalign.segments import replies
from duplexalign.speech.voices import get_voice
from duplexalign.streams.layout import Layout
from duplexalign.streams.shards import PairIndex, ShardWriter
from duplexalign.streams.text import build_text_stream
from duplexalign.streams.tokenizer import fit_tokenizer, load_tokenizer

REPLIES = ["the capital of france is paris", "sure let me tell you about that right now",
           "i am sorry i cannot help with that request", "yes of course here it is"]


def words(text: str, start: float, step: float = 0.3) -> list[Word]:
    """Evenly timed words (0.25 s each, one every `step` s)."""
    return [Word(text=t, start=start + i * step, end=start + i * step + 0.25)
            for i, t in enumerate(text.split())]


class Instant:
    """A voice whose speech was synthesised once up front (assembly cost only)."""

    def __init__(self, voice):
        self.cache = {t: voice.synthesize(t) for t in REPLIES}

    def synthesize(self, text):
        return self.cache[text]


def conversations(n: int) -> list[tuple[Conversation, Issue]]:
    out = []
    for i in range(n):
        model = words("hello there how can i help you today", 1.0) + words(
            "i do not know the answer to that", 8.0)
        user = words("what is the capital of france please", 4.0)
        conv = Conversation(id=f"c{i}", words=ChannelWords(model=model, user=user),
                            duration=30.0, audio=ChannelAudio(model="m.wav"),
                            source=Source(reader="bench", path="-", digest="0"))
        rep = replies(conv)[1]  # "i do not know the answer to that"
        iss = Issue(id=f"c{i}:x", conversation_id=f"c{i}", reply_id=rep.id,
                    reply_words=rep.word_range, reply_span=(8.0, 10.25),
                    kind="content", category="factuality", score=1, reason="wrong",
                    judge=JudgeInfo(name="bench"), improved_reply=REPLIES[i % len(REPLIES)])
        out.append((conv, iss))
    return out


def bench_assembly(n: int = 200) -> None:
    cfg = PairsConfig()
    wav = np.random.default_rng(0).normal(0, 0.05, 30 * 24000).astype(np.float32)
    real = get_voice("model")
    fake = Instant(real)
    rates = {}
    for name, voice in (("pre-synthesised voice", fake), ("espeak TTS", real)):
        convs = conversations(n)
        if name == "espeak TTS":
            real._cache.clear()  # measure synthesis, not the LRU cache
            real.max_items = 0
        t0 = time.perf_counter()
        for conv, iss in convs:
            env = PairEnv(conv, cfg, lambda: wav, lambda _n, v=voice: v)
            (cand,), _ = candidates(conv, [iss], cfg)
            STRATEGIES.get(cand.strategy)(cand, env)
        rates[name] = n / (time.perf_counter() - t0)
        print(f"assembly with {name:22s}: {rates[name]:8.1f} pairs/s")
    print(f"  ratio (assembly alone / with TTS): {rates['pre-synthesised voice'] / rates['espeak TTS']:.1f}x")


def bench_text(tmp: Path) -> None:
    corpus = [" ".join(REPLIES)] * 20 + ["what is the capital of france please"] * 20
    tok = load_tokenizer(fit_tokenizer(corpus, tmp / "tok.model", vocab_size=120))
    text = " ".join(REPLIES * 60).split()
    ws = [w for i, t in enumerate(text) for w in words(t, i * 0.4)]  # 240 s of words
    frames = 3000
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        build_text_stream(ws, tok, frames)
    fps = reps * frames / (time.perf_counter() - t0)
    print(f"text-stream builder: {fps:,.0f} frames/s ({fps / 12.5:,.0f}x real time, "
          f"{len(ws)} words in {frames} frames)")


def bench_disk(tmp: Path, n_conv: int = 20, pairs_per_conv: int = 2) -> None:
    lay = Layout(8)
    t_conv, window = 1500, 62
    rng = torch.Generator().manual_seed(0)
    shared = ShardWriter(tmp / "shared", max_bytes=1 << 40)
    dup: dict[str, torch.Tensor] = {}
    for c in range(n_conv):
        ctx = torch.randint(0, 2048, (lay.num_rows, t_conv), generator=rng)
        shared.add_context(f"c{c}", ctx)
        for j in range(pairs_per_conv):
            we = 600 + 400 * j
            e = PairIndex(id=f"c{c}-{j}", conversation_id=f"c{c}", shard="",
                          context_start_frame=0, window_start_frame=we - window,
                          window_end_frame=we, category="content", strategy="rewrite",
                          num_codebooks=8)
            ch = torch.randint(0, 2048, (lay.variant_rows.stop, window), generator=rng)
            rj = torch.randint(0, 2048, (lay.variant_rows.stop, window), generator=rng)
            shared.add_pair(e, ch, rj)
            for side, v in (("chosen", ch), ("rejected", rj)):
                full = ctx[:, :we].clone()
                full[lay.variant_rows, we - window:] = v
                dup[f"{e.id}/{side}"] = full.to(torch.int16)
    shared.close()
    (tmp / "dup").mkdir()
    save_file(dup, str(tmp / "dup" / "shard.safetensors"))
    n = n_conv * pairs_per_conv
    a = sum(p.stat().st_size for p in (tmp / "shared").glob("shard-*.safetensors")) / n
    b = (tmp / "dup" / "shard.safetensors").stat().st_size / n
    print(f"disk per pair: shared contexts {a / 1024:,.1f} KiB, duplicated {b / 1024:,.1f} KiB "
          f"(ratio {b / a:.2f}x; {pairs_per_conv} pairs per {t_conv}-frame conversation, "
          f"{window}-frame windows, K=8)")


def main() -> None:
    logging.disable(logging.INFO)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_assembly()
        bench_text(tmp)
        bench_disk(tmp)


if __name__ == "__main__":
    main()
