"""The generic `jsonl` reader and the transcript-less `audio` reader (with a fake ASR backend)."""

import gzip
import json

import numpy as np
import pytest
import soundfile as sf

from duplexalign.ingest.audio import read as read_audio
from duplexalign.ingest.base import Found, IngestConfig, Pending, Rejected, Skipped
from duplexalign.ingest.jsonl import read as read_jsonl
from duplexalign.manifest import iter_dicts, read_manifest
from duplexalign.records import Conversation
from duplexalign.speech.base import ASR_BACKENDS
from ingest.helpers import FakeASR, ingest

if "fake-test" not in ASR_BACKENDS:
    ASR_BACKENDS.add("fake-test", FakeASR)

LINE = {"id": "c1", "duration": 3.0, "meta": {"scenario": "s1"},
        "words": {"model": [["hi", 0.1, 0.3], {"text": "there", "start": 0.4, "end": 0.6}],
                  "user": [["yo", 1.0, 1.2]]}}


def test_jsonl_forms(tmp_path):
    sf.write(str(tmp_path / "s.wav"), np.zeros((24000 * 2, 2)), 24000)
    sf.write(str(tmp_path / "m.wav"), np.zeros(24000), 24000)
    lines = [
        LINE,
        {**LINE, "id": "c2", "duration": None},  # duration from the last word
        {**LINE, "id": "c3", "audio": "s.wav"},  # stereo file
        {**LINE, "id": "c4", "audio": {"model": "m.wav"}},  # per-channel mono files
    ]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    got = list(read_jsonl(tmp_path / "a.jsonl", IngestConfig()))
    assert isinstance(got[0], Conversation) and got[0].meta == {"scenario": "s1"}
    assert [w.text for w in got[0].words.model] == ["hi", "there"]
    assert got[1].duration == 1.2
    assert isinstance(got[2], Found) and got[2].audio["user"].index == 1
    assert got[2].audio["model"].path == tmp_path / "s.wav"
    assert set(got[3].audio) == {"model"} and got[3].audio["model"].index is None
    assert got[0].source.path.endswith("a.jsonl:1") and len(got[0].source.digest) == 64


def test_jsonl_gz_truncated_keeps_complete_lines(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    with gzip.open(p, "wt") as f:
        for i in range(300):
            f.write(json.dumps({**LINE, "id": f"c{i}", "pad": "x" * 100}) + "\n")
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) * 2 // 3])
    got = list(read_jsonl(p, IngestConfig()))
    assert isinstance(got[-1], Rejected) and got[-1].reason == "input_unreadable"
    assert all(isinstance(g, Conversation) for g in got[:-1]) and len(got) > 5


def test_stage_on_jsonl_counts_duplicates_and_keeps_going(tmp_path):
    lines = [json.dumps(LINE), json.dumps(LINE), json.dumps({**LINE, "id": "c2"})]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    stats = ingest(IngestConfig(format="jsonl"), tmp_path / "a.jsonl", tmp_path / "run")
    assert stats.counts["written"] == 2 and stats.counts["quarantined/duplicate_id"] == 1
    (q,) = iter_dicts(tmp_path / "run" / "quarantine.jsonl.gz")
    assert q["conversation_id"] == "c1" and q["item"].endswith(":2")


def _stereo(path, model, user, sr=24000):
    sf.write(str(path), np.stack([model, user], 1), sr)


def test_audio_reader_transcribes_both_channels(tmp_path):
    sr = 24000
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)
    silence = np.zeros(sr)
    d = tmp_path / "rec"
    d.mkdir()
    _stereo(d / "a.wav", np.concatenate([tone, silence]), np.concatenate([silence, tone]))
    sf.write(str(d / "mono.wav"), np.concatenate([tone, tone]), sr)
    fail = np.concatenate([tone, tone])
    fail[0] = 0.5  # FakeASR fails on this marker
    _stereo(d / "fails.wav", fail, fail)
    (d / "notes.txt").write_text("ignored: not audio")
    cfg = IngestConfig(format="audio", asr="fake-test", asr_model="/models/x")
    stats = ingest(cfg, d, tmp_path / "run")
    (c,) = read_manifest(tmp_path / "run" / "conversations.jsonl.gz", Conversation)
    assert c.id == "a" and c.duration == 2.0
    assert [(w.start, w.end) for w in c.words.model] == [(0.0, 0.4), (0.5, 0.9)]
    assert [(w.start, w.end) for w in c.words.user] == [(1.0, 1.4), (1.5, 1.9)]
    assert c.source.reader == "audio" and c.meta["asr"] == "FakeASR"
    reasons = {q["reason"] for q in iter_dicts(tmp_path / "run" / "quarantine.jsonl.gz")}
    assert reasons == {"audio_mono", "asr_failed"}
    assert stats.counts["written"] == 1 and stats.counts["quarantined"] == 2


def test_audio_reader_skips_done_ids_before_asr(tmp_path):
    sr = 24000
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)
    _stereo(tmp_path / "a.wav", tone, tone)
    _stereo(tmp_path / "b.wav", tone, tone)
    FakeASR.calls = 0
    skipped, pending = read_audio(tmp_path, IngestConfig(asr="fake-test"), done={"a"})
    assert isinstance(skipped, Skipped) and skipped.conversation_id == "a"
    assert isinstance(pending, Pending) and pending.conversation_id == "b" and FakeASR.calls == 0
    found = pending.resolve(FakeASR())
    assert found.conversation.id == "b" and FakeASR.calls == 2  # two channels of b only


def test_unknown_asr_backend_is_a_config_error(tmp_path):
    from duplexalign.errors import ConfigError

    _stereo(tmp_path / "a.wav", np.ones(10) * 0.1, np.ones(10) * 0.1)
    with pytest.raises(ConfigError, match="asr backend"):
        list(read_audio(tmp_path, IngestConfig(asr="no-such-asr")))


def test_overlong_audio_is_refused_before_decoding(tmp_path):
    sf.write(str(tmp_path / "long.wav"), np.zeros((24000 * 4, 2)), 24000)
    line = {**LINE, "duration": None, "audio": "long.wav"}
    (tmp_path / "a.jsonl").write_text(json.dumps(line) + "\n")
    stats = ingest(IngestConfig(format="jsonl", max_duration=3.0), tmp_path / "a.jsonl",
                tmp_path / "run")
    assert stats.counts["quarantined/too_long"] == 1 and stats.counts["written"] == 0


def test_bom_is_accepted_and_out_inside_input_is_refused(tmp_path):
    from duplexalign.errors import ConfigError

    (tmp_path / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(LINE).encode() + b"\n")
    (c,) = read_jsonl(tmp_path / "a.jsonl", IngestConfig())
    assert c.id == "c1"
    with pytest.raises(ConfigError, match="inside the input folder"):
        ingest(IngestConfig(format="jsonl"), tmp_path, tmp_path / "run")
