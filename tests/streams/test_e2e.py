"""End to end on a tiny real run: espeak TTS, a MelRVQ codec fitted here, a fitted tokenizer.

`pairs.run` then `streams.run` turn one annotated conversation into one pair per strategy (rewrite,
retime, insert; voice transfer in a second run) and shards the trainer's reader opens; every pair keeps
the invariant on disk and in the token tensors.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from factories import issue

from duplexalign.manifest import read_manifest, write_manifest
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.policy import check_invariant
from duplexalign.pairs.stage import run as run_pairs
from duplexalign.records import (
    ChannelAudio,
    ChannelWords,
    Conversation,
    JudgeInfo,
    PreferencePair,
    Source,
    Word,
)
from duplexalign.runs import RunDir
from duplexalign.speech.audio import place, write_audio
from duplexalign.speech.melrvq import MelRVQ
from duplexalign.speech.voices import get_voice
from duplexalign.streams.layout import Layout
from duplexalign.streams.shards import ShardReader, read_index
from duplexalign.streams.stage import StreamsConfig
from duplexalign.streams.stage import run as run_streams
from duplexalign.streams.tokenizer import TextTokenizer, fit_tokenizer
from duplexalign.timebase import seconds_to_frame

K = 4


class FakeRewriter:
    """Stands in for the LLM rewriter (the judges' own tests cover the real one)."""

    def rewrite(self, context, problems, bad_reply):
        return "a better answer"

    def write_reply(self, context):
        return "yes i am here"


def _say(voice: str, text: str, start: float):
    sp = get_voice(voice).synthesize(text)
    return sp.wav, [Word(text=w.text, start=start + w.start, end=start + w.end) for w in sp.words]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A run dir with one conversation (model audio, user words only), its issues, codec and tok."""
    root = tmp_path_factory.mktemp("e2e")
    run = root / "run"
    t, user, model, clips = 0.3, [], [], []
    uw, ws = _say("user_0", "what is the capital of france", t)
    user += ws
    t = ws[-1].end + 0.4
    mw, ws = _say("model", "i do not know that one", t)
    model += ws
    clips.append((t, mw))
    content_span = (ws[0].start, ws[-1].end)
    t = ws[-1].end + 1.0
    uw, ws = _say("user_1", "tell me a short joke about cats please", t)
    user += ws
    user_turn = (ws[0].start, ws[-1].end)
    t = ws[2].start
    mw, ws = _say("model", "sure here is a joke", t)
    model += ws
    clips.append((t, mw))
    inter_span = (ws[0].start, ws[-1].end)
    t = max(user_turn[1], ws[-1].end) + 1.5
    uw, ws = _say("user_0", "are you still there", t)
    user += ws
    duration = ws[-1].end + 4.0
    model_wav = place(clips, duration)
    write_audio(run / "audio" / "c1.model.wav", model_wav)
    conv = Conversation(id="c1", words=ChannelWords(model=model, user=sorted(user, key=lambda w: w.start)),
                        duration=duration, audio=ChannelAudio(model="audio/c1.model.wav"),
                        source=Source(reader="test", path="-", digest="0"))
    judge = JudgeInfo(name="test")
    issues = [
        issue(conv, "content", "factuality", content_span, id="i1", score=1,
              reason="did not answer", judge=judge,
              improved_reply="the capital of france is paris"),
        issue(conv, "timing", "interruption", inter_span, id="i2",
              reason="talked over the user", judge=judge, user_turn=list(user_turn)),
        issue(conv, "timing", "unresponsiveness", (ws[-1].end, duration), id="i3",
              reason="stayed silent", judge=judge)]
    write_manifest(run / "conversations.jsonl.gz", [conv])
    RunDir(run).mark_done("ingest")
    write_manifest(run / "annotations.jsonl.gz", issues)
    RunDir(run).mark_done("annotate")
    codec = MelRVQ.fit([model_wav, get_voice("user_2").synthesize(
        "the quick brown fox jumps over the lazy dog again and again").wav], num_codebooks=K,
        codebook_size=16, pca_dim=16, niter=5, progress=False)
    codec_path = codec.save(root / "codec.safetensors")
    texts = [w.text for w in conv.words.model + conv.words.user] + [
        "the capital of france is paris", "yes i am still here"]
    tok = fit_tokenizer(texts * 5, root / "tok.model", vocab_size=120)
    return {"root": root, "run": run, "conv": conv, "codec": str(codec_path), "tok": str(tok)}


def _check_streams(run, conv, tok_path, expect_strategies):
    pairs = {p.id: p for p in read_manifest(run / "pairs.jsonl.gz", PreferencePair)}
    index = list(read_index(run / "streams"))
    assert sorted(e.strategy for e in index) == sorted(expect_strategies)
    reader = ShardReader(run / "streams")
    tok = TextTokenizer(tok_path)
    lay = Layout(K)
    for e in index:
        p = pairs[e.id]
        chosen, rejected = reader.pair_codes(e)
        assert chosen.shape == rejected.shape == (lay.num_rows, e.num_frames)
        w0 = e.window_start_frame - e.context_start_frame
        # Invariant in tensors: the context and the user rows are shared; only the window's text
        # and model rows may differ.
        assert torch.equal(chosen[:, :w0], rejected[:, :w0])
        assert torch.equal(chosen[lay.user_rows], rejected[lay.user_rows])
        assert not torch.equal(chosen[lay.variant_rows, w0:], rejected[lay.variant_rows, w0:])
        # The window's text rows hold exactly the variant's word tokens, in order, nothing dropped.
        for codes, variant in ((chosen, p.chosen), (rejected, p.rejected)):
            got = [i for i in codes[0, w0:].tolist() if i not in (0, 3)]
            assert got == [i for w in variant.words for i in tok.encode_word(w.text)]
        assert chosen.min() >= 0 and chosen[lay.model_rows].max() < 16
        if p.rejected_source == "logged":
            ctx = reader.context(e)
            assert torch.equal(rejected[lay.model_rows], ctx[lay.model_rows])
        floor = reader.floor(e)
        assert floor is not None and floor.shape == (e.num_frames,)
        if e.strategy == "retime":
            # the chosen reply waits for the user's turn end: the user holds the floor in the
            # window from the logged (interrupting) onset until the turn ends
            onset = seconds_to_frame(p.rejected.words[0].start) - e.context_start_frame
            assert floor[onset:onset + 3].all()
            assert not floor[seconds_to_frame(p.chosen.words[0].start) - e.context_start_frame]
    return pairs, index


def test_pairs_then_streams_end_to_end(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    cfg = PairsConfig(max_pairs_per_conversation=3)
    stats = run_pairs(cfg, run, rewriter=FakeRewriter())
    assert stats.counts["written"] == 3
    assert stats.counts["written/strategy/rewrite"] == 1
    assert stats.counts["written/strategy/retime"] == 1
    assert stats.counts["written/strategy/insert"] == 1
    pairs = list(read_manifest(run / "pairs.jsonl.gz", PreferencePair))
    for p in pairs:
        assert check_invariant(p, cfg.max_context_frames, run) == []
    ins = next(p for p in pairs if p.strategy == "insert")
    assert ins.chosen.text == "yes i am here" and ins.rejected.words == []
    assert run_pairs(cfg, run).skipped  # rerun: no-op

    scfg = StreamsConfig(codec_path=world["codec"], tokenizer=world["tok"])
    s = run_streams(scfg, run)
    assert s.counts["written"] == 3 and s.values["num_codebooks"] == K
    assert (run / "streams" / "user_audio" / "c1.wav").exists()  # user channel rebuilt by TTS
    _check_streams(run, world["conv"], world["tok"], ["rewrite", "retime", "insert"])
    assert run_streams(scfg, run).skipped


def test_voice_transfer_end_to_end(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    cfg = PairsConfig(max_pairs_per_conversation=1, voice_transfer=True)
    stats = run_pairs(cfg, run, rewriter=FakeRewriter())
    assert stats.counts["written/strategy/voice"] == 1
    assert stats.counts["dropped/policy_extra_reply"] == 2
    p = next(iter(read_manifest(run / "pairs.jsonl.gz", PreferencePair)))
    assert p.voice == "model_alt" and p.rejected_source == "tts"
    assert p.rejected.text.lower().split() == "i do not know that one".split()
    assert check_invariant(p, cfg.max_context_frames, run) == []
    run_streams(StreamsConfig(codec_path=world["codec"], tokenizer=world["tok"]), run)
    _check_streams(run, world["conv"], world["tok"], ["voice"])


def test_cli_pairs_export_tokenizer_streams(world, tmp_path):
    import json

    import pyarrow.parquet as pq

    from duplexalign.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    pq_path, sft = tmp_path / "pairs.parquet", tmp_path / "sft"
    # the rewriter endpoint cannot be reached: the silence pair has no reply text and is
    # dropped with its reason (without a rewriter setting it would default to annotate's endpoint)
    assert main(["pairs", str(run), "--set", "max_pairs_per_conversation=3",
                 "--set", "rewriter.url=http://127.0.0.1:9/v1", "--set", "rewriter.max_retries=0",
                 "--export-parquet", str(pq_path), "--export-sft", str(sft)]) == 0
    stats = json.loads((run / "stats.json").read_text())["pairs"]["counts"]
    assert stats["written"] == 2 and stats["dropped/rewriter_failed:LLMCallFailed"] == 1
    table = pq.read_table(pq_path).to_pylist()
    assert sorted(r["strategy"] for r in table) == ["retime", "rewrite"]
    row = next(r for r in table if r["strategy"] == "rewrite")
    assert row["chosen_text"] == "the capital of france is paris"
    assert row["rejected_text"] == "i do not know that one"
    assert (tmp_path / row["chosen_audio"]).exists()
    lines = (sft / "index.jsonl").read_text().splitlines()
    assert len(lines) == 2
    clip = json.loads(lines[0])
    align = json.loads((sft / clip["path"]).with_suffix(".json").read_text())["alignments"]
    assert any(a[2] == "SPEAKER_MAIN" for a in align)
    tok = tmp_path / "tok.model"
    assert main(["tokenizer", "fit", str(run), "--out", str(tok), "--vocab-size", "100"]) == 0
    assert main(["streams", str(run), "--codec-path", world["codec"], "--tokenizer",
                 str(tok)]) == 0
    assert len(list(read_index(run / "streams"))) == 2
