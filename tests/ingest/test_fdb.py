"""The Full-Duplex-Bench reader on the shared example folders and on generated sample folders."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from duplexalign.ingest.base import IngestConfig
from duplexalign.ingest.fdb import read
from duplexalign.manifest import iter_dicts, read_manifest
from duplexalign.records import Conversation
from duplexalign.speech.base import ASR_BACKENDS
from ingest.helpers import FakeASR, ingest

if "fake-test" not in ASR_BACKENDS:
    ASR_BACKENDS.add("fake-test", FakeASR)


@pytest.fixture
def examples(shared_data):
    return shared_data / "full_duplex_bench" / "v1_v1.5" / "example_data"


def _chunks(path):
    return json.loads(path.read_text())["chunks"]


def test_shared_examples_words_only(examples, tmp_path):
    # the shared examples carry no wavs: keep them words-only
    cfg = IngestConfig(format="fdb", require_audio=False, require_channels=["model"])
    stats = ingest(cfg, examples, tmp_path / "run")
    convs = {c.id: c for c in read_manifest(tmp_path / "run" / "conversations.jsonl.gz",
                                             Conversation)}
    assert sorted(convs) == ["pause_handling_example/1", "smooth_turn_taking_example/1",
                             "user_interruption_example/1"]
    for cid, c in convs.items():
        chunks = _chunks(examples / cid / "output.json")
        assert [w.text for w in c.words.model] == [ch["text"].strip() for ch in chunks]
        assert c.audio.model is None and not c.user_audio_existed
    turn = convs["smooth_turn_taking_example/1"]
    transcript = json.loads((examples / "smooth_turn_taking_example/1/transcription.json")
                            .read_text())
    assert len(turn.words.user) == sum(len(t["item"]) for t in transcript)
    assert [w.start for w in turn.words.user] == sorted(w.start for w in turn.words.user)
    assert turn.meta["fdb"]["turn_taking"][0]["text"] == "[TURN-TAKING]"
    assert convs["user_interruption_example/1"].meta["fdb"]["interrupt"][0]["timestamp"]
    assert stats.counts["written"] == 3 and stats.counts["quarantined"] == 0


def test_shared_examples_without_wavs_are_quarantined_by_default(examples, tmp_path):
    stats = ingest(IngestConfig(format="fdb"), examples, tmp_path / "run")
    assert stats.counts["written"] == 0
    assert stats.counts["quarantined/audio_missing"] == 3


def test_generated_sample_with_audio_and_asr_for_the_user(examples, tmp_path):
    sample = tmp_path / "fdb" / "interrupt" / "7"
    shutil.copytree(examples / "user_interruption_example" / "1", sample)
    sr = 16000  # FD-Bench audio is 16 kHz: resampled to 24 kHz
    n = 29 * sr
    t = np.arange(n) / sr
    sf.write(str(sample / "output.wav"), 0.3 * np.sin(2 * np.pi * 200 * t), sr)
    user = np.zeros(n)
    user[sr: 3 * sr] = 0.3 * np.sin(2 * np.pi * 300 * t[sr: 3 * sr])  # 1 s .. 3 s
    sf.write(str(sample / "input.wav"), user, sr)
    cfg = IngestConfig(format="fdb", asr="fake-test", keep_user_audio=True)
    stats = ingest(cfg, tmp_path / "fdb", tmp_path / "run")
    assert stats.counts["written"] == 1 and stats.counts["resampled"] == 1
    (c,) = read_manifest(tmp_path / "run" / "conversations.jsonl.gz", Conversation)
    assert c.id == "interrupt/7" and c.duration == pytest.approx(29.0)
    assert len(c.words.model) == len(_chunks(sample / "output.json"))
    # the fake ASR names one word per loud half second: 1.0 .. 3.0 s -> 4 words
    assert [w.start for w in c.words.user] == [1.0, 1.5, 2.0, 2.5]
    assert c.meta["user_words_from"] == "asr"
    assert c.audio.user is not None and c.user_audio_existed
    assert sf.info(str(tmp_path / "run" / c.audio.model)).samplerate == 24000


def test_bad_sample_is_quarantined_with_reason(tmp_path):
    sample = tmp_path / "fdb" / "1"
    sample.mkdir(parents=True)
    (sample / "output.json").write_text('{"chunks": [{"text": "a", "timestamp": [1.0, 0.5]}]}')
    good = tmp_path / "fdb" / "2"
    good.mkdir()
    (good / "output.json").write_text('{"chunks": [{"text": "a", "timestamp": [0.5, null]}]}')
    items = list(read(tmp_path / "fdb", IngestConfig(require_channels=[])))
    assert items[0].reason == "time_reversed"
    assert items[1].conversation.words.model[0].end == 0.5  # missing end -> its start
    assert next(iter(read(tmp_path / "nothing", IngestConfig()))).reason == "input_missing"
    ingest(IngestConfig(format="fdb", require_audio=False, require_channels=[]), tmp_path / "fdb",
        tmp_path / "run")
    (q,) = iter_dicts(tmp_path / "run" / "quarantine.jsonl.gz")
    assert q["reason"] == "time_reversed" and q["item"].endswith("1")


def test_interruption_without_input_wav_takes_the_cut_in_from_interrupt_json(examples, tmp_path):
    # the shared interruption example has no input.wav: the user words are interrupt.json's
    # "Can we talk about something else? How about fiction books?" (10 words) spread evenly over
    # its span 10.5307 .. 13.144 s (0.26133 s each)
    cfg = IngestConfig(format="fdb", require_audio=False)
    stats = ingest(cfg, examples, tmp_path / "run")
    (c,) = [c for c in read_manifest(tmp_path / "run" / "conversations.jsonl.gz", Conversation)
            if c.id == "user_interruption_example/1"]
    assert [w.text for w in c.words.user][:3] == ["Can", "we", "talk"]
    assert len(c.words.user) == 10
    assert c.words.user[0].start == pytest.approx(10.530666666666667)
    assert c.words.user[-1].end == pytest.approx(13.144)
    assert c.words.user[1].start == pytest.approx(10.530666666666667 + (13.144 - 10.5307) / 10,
                                                  abs=1e-4)
    assert c.meta["user_words_from"] == "interrupt.json"
    # the pause example holds its user only in input.wav (absent here): still no user words
    assert stats.counts["quarantined/empty_channel_user"] == 1
