"""A `pairs` run that dies half-way and is resumed writes exactly the bytes of an uninterrupted run.

Three conversations spoken with real espeak-ng, each with a content issue (rewrite: new TTS speech)
and a silence (insert: new TTS speech). One run goes straight through; the other dies after its
third synthesis (after the first conversation's pairs are on disk) and is run again. Every file of
the two run folders must be identical (pairs.jsonl.gz and every wav byte for byte; the resumable
working manifests by content), except stats.json and provenance.json (times). The control
repeats this with espeak synthesising inside the process, whose output depends on what it spoke
before: there the resumed run differs, which is what the test guards against.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from factories import issue

from duplexalign.manifest import iter_dicts, write_manifest
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.stage import run as run_pairs
from duplexalign.records import (
    ChannelAudio,
    ChannelWords,
    Conversation,
    JudgeInfo,
    Source,
    Word,
)
from duplexalign.runs import RunDir
from duplexalign.speech.audio import place, write_audio
from duplexalign.speech.tts import EspeakTTS
from duplexalign.speech.voices import VOICES

ANSWERS = ["the capital of france is paris", "water boils at one hundred degrees",
           "a spider has eight legs"]


class Killed(Exception):
    """Stands for the process being killed in the middle of the stage."""


class Rewriter:
    def rewrite(self, context, problems, bad_reply):
        return "let me answer that properly"

    def write_reply(self, context):
        return "yes i am still here"


def voices(reproducible: bool, die_after: int | None = None):
    """voice name -> a fresh (uncached) espeak TTS; raises Killed after `die_after` syntheses."""
    calls = [0]

    class Counting:
        def __init__(self, name):
            self.name = name
            self.tts = EspeakTTS(**VOICES[name].options, reproducible=reproducible)

        def synthesize(self, text):
            calls[0] += 1
            if die_after is not None and calls[0] > die_after:
                raise Killed
            return self.tts.synthesize(text)

    return Counting


def _say(voice: str, text: str, start: float):
    sp = EspeakTTS(**VOICES[voice].options).synthesize(text)
    return sp.wav, [Word(text=w.text, start=start + w.start, end=start + w.end) for w in sp.words]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("resume") / "run"
    convs, issues = [], []
    judge = JudgeInfo(name="test")
    for i, answer in enumerate(ANSWERS):
        _, user = _say("user_0", "can you tell me something", 0.3)
        t = user[-1].end + 0.4
        mw, model = _say("model", "i do not know", t)
        t2 = model[-1].end + 1.0
        _, user2 = _say("user_1", "hello are you there", t2)
        duration = user2[-1].end + 4.0
        cid = f"c{i}"
        write_audio(run / "audio" / f"{cid}.model.wav", place([(t, mw)], duration))
        convs.append(Conversation(
            id=cid, words=ChannelWords(model=model, user=user + user2), duration=duration,
            audio=ChannelAudio(model=f"audio/{cid}.model.wav"),
            source=Source(reader="test", path="-", digest="0")))
        issues += [
            issue(convs[-1], "content", "factuality", (model[0].start, model[-1].end),
                  id=f"{cid}-content", score=1, reason="no answer", judge=judge,
                  improved_reply=answer),
            issue(convs[-1], "timing", "unresponsiveness", (user2[-1].end, duration),
                  id=f"{cid}-silence", reason="stayed silent", judge=judge)]
    write_manifest(run / "conversations.jsonl.gz", convs)
    write_manifest(run / "annotations.jsonl.gz", issues)
    RunDir(run).mark_done("ingest")
    RunDir(run).mark_done("annotate")
    return run


def _files(run: Path) -> dict[str, bytes]:
    """Every file's bytes; the stage's resumable working manifests (pairs/*.jsonl.gz, appended
    as one gzip member per session) by their decompressed bytes."""
    skip = {"stats.json", "provenance.json"}
    out = {}
    for p in sorted(run.rglob("*")):
        if p.is_file() and p.name not in skip:
            rel = str(p.relative_to(run))
            working = rel.startswith("pairs/") and rel.endswith(".jsonl.gz")
            out[rel] = gzip.decompress(p.read_bytes()) if working else p.read_bytes()
    return out


def _straight_and_resumed(annotated: Path, tmp: Path, reproducible: bool):
    cfg = PairsConfig(max_pairs_per_conversation=4)
    straight, resumed = tmp / "straight", tmp / "resumed"
    for d in (straight, resumed):
        shutil.copytree(annotated, d)
    run_pairs(cfg, straight, rewriter=Rewriter(), voice=voices(reproducible))
    with pytest.raises(Killed):
        run_pairs(cfg, resumed, rewriter=Rewriter(), voice=voices(reproducible, die_after=3))
    assert not RunDir(resumed).is_done("pairs")
    run_pairs(cfg, resumed, rewriter=Rewriter(), voice=voices(reproducible))
    return _files(straight), _files(resumed)


def test_killed_and_resumed_pairs_equal_an_uninterrupted_run_byte_for_byte(annotated, tmp_path):
    a, b = _straight_and_resumed(annotated, tmp_path, reproducible=True)
    wavs = [k for k in a if k.startswith("pairs/audio/")]
    assert len(wavs) == 2 * 2 * len(ANSWERS)  # chosen + rejected of a rewrite and an insert each
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_control_in_process_espeak_makes_the_resumed_run_differ(annotated, tmp_path):
    a, b = _straight_and_resumed(annotated, tmp_path, reproducible=False)
    assert [k for k in a if k.startswith("pairs/audio/") and a[k] != b.get(k)]


def test_a_pair_dropped_on_its_own_never_gets_its_wavs_written(annotated, tmp_path):
    # every window is shorter than 30 s: the workers drop each pair before writing its wavs
    run = tmp_path / "run"
    shutil.copytree(annotated, run)
    cfg = PairsConfig(max_pairs_per_conversation=4, min_window=30.0, max_window=40.0)
    stats = run_pairs(cfg, run, rewriter=Rewriter(), voice=voices(reproducible=True))
    assert stats.counts["built"] == 0
    dropped = list(iter_dicts(run / "pairs" / "dropped.jsonl.gz"))
    assert [d["reason"] for d in dropped] == ["too_short"] * 2 * len(ANSWERS)
    assert all(d["detail"].endswith("< 30.0s") for d in dropped)
    assert list((run / "pairs").rglob("*.wav")) == []
