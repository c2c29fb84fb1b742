"""Exports of the pairs: a Hugging Face `datasets`-loadable parquet, and the chosen conversations in
the moshi-finetune layout for SFT.

Owns the two outward formats of RUN/pairs.jsonl.gz. The parquet has one row per pair (ids, strategy,
category, voice, window and context times, both texts, word timings, absolute audio paths, issue ids,
meta as JSON) and loads with `datasets.load_dataset("parquet", data_files=...)`. The SFT export turns
each pair's chosen side into a clip from the context start to the window end (logged model audio in
the context, the chosen window audio inside it; user audio kept or rebuilt by `streams`, else silence)
and writes it with `ingest.export.export_moshi_finetune`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from duplexalign.manifest import read_manifest
from duplexalign.records import (
    ChannelAudio,
    ChannelWords,
    Conversation,
    PreferencePair,
    Source,
    Word,
)
from duplexalign.runs import CONVERSATIONS, PAIRS, RunDir
from duplexalign.text import safe_id
from duplexalign.timebase import seconds_to_samples


def _words(ws: list[Word]) -> list[dict]:
    return [{"text": w.text, "start": w.start, "end": w.end} for w in ws]


def export_parquet(run_dir: str | Path, out_path: str | Path) -> int:
    """Write RUN/pairs.jsonl.gz as a parquet file; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rd = RunDir(run_dir, create=False)
    rows: dict[str, list] = {k: [] for k in (
        "id", "conversation_id", "strategy", "category", "voice", "window_start", "window_end",
        "context_start", "chosen_text", "rejected_text", "chosen_words", "rejected_words",
        "chosen_audio", "rejected_audio", "issue_ids", "meta")}
    for p in read_manifest(rd.path(PAIRS), PreferencePair):
        rows["id"].append(p.id)
        rows["conversation_id"].append(p.conversation_id)
        rows["strategy"].append(p.strategy)
        rows["category"].append(p.category)
        rows["voice"].append(p.voice)
        rows["window_start"].append(p.window[0])
        rows["window_end"].append(p.window[1])
        rows["context_start"].append(p.context_start)
        rows["chosen_text"].append(p.chosen.text)
        rows["rejected_text"].append(p.rejected.text)
        rows["chosen_words"].append(_words(p.chosen.words))
        rows["rejected_words"].append(_words(p.rejected.words))
        for side, v in (("chosen", p.chosen), ("rejected", p.rejected)):
            rows[f"{side}_audio"].append(str(rd.resolve(v.audio).resolve()) if v.audio else None)
        rows["issue_ids"].append(list(p.issue_ids))
        rows["meta"].append(json.dumps(p.meta, sort_keys=True))
    word = pa.struct([("text", pa.string()), ("start", pa.float64()), ("end", pa.float64())])
    schema = pa.schema([
        ("id", pa.string()), ("conversation_id", pa.string()), ("strategy", pa.string()),
        ("category", pa.string()), ("voice", pa.string()), ("window_start", pa.float64()),
        ("window_end", pa.float64()), ("context_start", pa.float64()),
        ("chosen_text", pa.string()), ("rejected_text", pa.string()),
        ("chosen_words", pa.list_(word)), ("rejected_words", pa.list_(word)),
        ("chosen_audio", pa.string()), ("rejected_audio", pa.string()),
        ("issue_ids", pa.list_(pa.string())), ("meta", pa.string())])
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(pa.table(rows, schema=schema), str(tmp))
    tmp.replace(out)
    return len(rows["id"])


def _shift(words: list[Word], t0: float, t1: float) -> list[Word]:
    return [Word(text=w.text, start=w.start - t0, end=min(w.end, t1) - t0)
            for w in words if t0 <= w.start < t1]


def chosen_conversations(run_dir: str | Path, clip_dir: str = "pairs/sft"):
    """Yield each pair's chosen side as a `Conversation` clip [context_start, window end).

    Its audio files are written under RUN/`clip_dir` (paths in the record are run-relative).
    """
    from duplexalign.speech.audio import read_audio, write_audio

    rd = RunDir(run_dir, create=False)
    convs = {c.id: c for c in read_manifest(rd.path(CONVERSATIONS), Conversation)}
    for p in read_manifest(rd.path(PAIRS), PreferencePair):
        conv = convs.get(p.conversation_id)
        if conv is None or conv.audio.model is None or p.chosen.audio is None:
            continue
        cs, (ws, we) = p.context_start, p.window
        a, b, n = (seconds_to_samples(t - cs) for t in (ws, we, we))
        model = np.zeros(n, dtype=np.float32)
        logged = read_audio(rd.resolve(conv.audio.model))
        ctx = logged[seconds_to_samples(cs):seconds_to_samples(ws)]
        model[:len(ctx)] = ctx
        win = read_audio(rd.resolve(p.chosen.audio))[:b - a]
        model[a:a + len(win)] = win
        base = f"{clip_dir}/{safe_id(p.id)}"
        write_audio(rd.path(f"{base}.model.wav"), model)
        user_rel = None
        user_src = (rd.resolve(conv.audio.user) if conv.audio.user else
                    rd.path(f"streams/user_audio/{safe_id(conv.id)}.wav"))
        if user_src.exists():
            user = read_audio(user_src)[seconds_to_samples(cs):seconds_to_samples(we)]
            write_audio(rd.path(f"{base}.user.wav"), user)
            user_rel = f"{base}.user.wav"
        model_words = [w for w in conv.words.model if w.start < ws] + list(p.chosen.words)
        yield Conversation(
            id=p.id, duration=we - cs,
            words=ChannelWords(model=_shift(model_words, cs, we),
                               user=_shift(conv.words.user, cs, we)),
            audio=ChannelAudio(model=f"{base}.model.wav", user=user_rel),
            source=Source(reader="pairs.chosen", path=p.id, digest=conv.source.digest),
            meta={"pair_id": p.id, "conversation_id": conv.id, "strategy": p.strategy})


def export_chosen_moshi_finetune(run_dir: str | Path, out_dir: str | Path) -> Counter:
    """Write every pair's chosen clip in the moshi-finetune layout under `out_dir` (for SFT)."""
    from duplexalign.ingest.export import export_moshi_finetune

    return export_moshi_finetune(chosen_conversations(run_dir), run_dir, out_dir)
