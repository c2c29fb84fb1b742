"""End to end: `duplexalign ingest --format moshi-finetune` on real two-speaker conversations plus
malformed items, which are quarantined with reasons while the good ones are written intact."""

import json

import numpy as np
import pytest
import soundfile as sf

from duplexalign.cli.main import main as cli
from duplexalign.ingest.base import IngestConfig
from duplexalign.ingest.moshi_finetune import parse_alignments
from duplexalign.manifest import iter_dicts, read_manifest
from duplexalign.records import Conversation
from duplexalign.runs import RunDir
from duplexalign.timebase import SAMPLE_RATE
from ingest.helpers import DIALOGUES, ingest, speak, write_index, write_moshi


@pytest.fixture(scope="module")
def dialogues():
    # the second one is recorded at 16 kHz: it must be resampled, not rejected
    return [speak(t, sample_rate=16000 if i == 1 else SAMPLE_RATE) for i, t in enumerate(DIALOGUES)]


@pytest.fixture
def dataset(tmp_path, dialogues):
    root = tmp_path / "data"
    good = [write_moshi(root, f"conv{i}", d) for i, d in enumerate(dialogues)]
    d0 = dialogues[0]
    bad = [
        {"path": "audio/missing.wav", "duration": 3.0},  # audio_missing (json exists, wav not)
        write_moshi(root, "mono", d0.__class__(d0.stereo[:, :1], d0.sample_rate, d0.words)),
        write_moshi(root, "nojson", d0, doc={}),  # bad_schema: no "alignments"
        # any label but the main one is the user (moshi-finetune): this one has no model words
        write_moshi(root, "speaker", d0, doc={"alignments": [["hi", [0.1, 0.2], "NARRATOR"]]}),
        write_moshi(root, "unsorted", d0, doc={"alignments": [
            ["b", [1.0, 1.2], "SPEAKER_MAIN"], ["a", [0.1, 0.2], "SPEAKER_MAIN"],
            ["u", [0.5, 0.6], "SPEAKER_1"]]}),
        write_moshi(root, "pastend", d0, doc={"alignments": [
            ["a", [0.1, 0.2], "SPEAKER_MAIN"], ["u", [20.0, 20.5], "SPEAKER_1"]]}),
        write_moshi(root, "reversed", d0, doc={"alignments": [["a", [2.0, 1.0], "SPEAKER_MAIN"]]}),
        write_moshi(root, "nouser", d0, doc={"alignments": [["a", [0.1, 0.2], "SPEAKER_MAIN"]]}),
        "this is not json",
        '{"path": "audio/nan.wav", "duration": NaN}',
        {"duration": 3.0},
    ]
    (root / "audio" / "missing.json").write_text(json.dumps({"alignments": []}))
    (root / "audio" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "audio" / "broken.json").write_text(json.dumps({"alignments": []}))
    bad.append({"path": "audio/broken.wav", "duration": 1.0})
    # good and bad interleaved: order must not matter
    entries = [good[0], *bad[:6], good[1], *bad[6:], good[2]]
    return write_index(root, entries), dialogues


EXPECTED_REASONS = {
    "audio_missing": 1, "audio_mono": 1, "bad_schema": 2, "empty_channel_model": 1,
    "words_unsorted": 1, "words_past_end": 1, "time_reversed": 1, "empty_channel_user": 1,
    "bad_json": 1, "time_nan": 1, "audio_unreadable": 1,
}


def test_ingest_writes_good_conversations_and_quarantines_the_rest(dataset, tmp_path, capsys):
    index, dialogues = dataset
    out = tmp_path / "run"
    assert cli(["ingest", str(index), "--format", "moshi-finetune", "--out", str(out)]) == 0
    assert "written" in capsys.readouterr().out
    for name in ("conversations.jsonl.gz", "quarantine.jsonl.gz", "stats.json"):
        assert (out / name).exists()

    convs = {c.id: c for c in read_manifest(out / "conversations.jsonl.gz", Conversation)}
    assert sorted(convs) == ["audio/conv0", "audio/conv1", "audio/conv2"]
    for i, d in enumerate(dialogues):
        c = convs[f"audio/conv{i}"]
        for ch in ("model", "user"):  # per-channel word counts and texts survive exactly
            assert [(w.text, w.start, w.end) for w in c.words.of(ch)] == \
                [(t, pytest.approx(s), pytest.approx(e)) for t, s, e in d.words[ch]]
        assert c.duration == pytest.approx(d.duration, abs=1e-3)
        assert c.source.reader == "moshi-finetune" and len(c.source.digest) == 64
        # privacy: only the model channel is carried forward, the record says user audio existed
        assert c.audio.user is None and c.user_audio_existed
        model = RunDir(out).resolve(c.audio.model)
        wav, sr = sf.read(str(model))
        assert sr == SAMPLE_RATE and wav.ndim == 1
        assert abs(len(wav) - d.duration * SAMPLE_RATE) <= 2
        ref = d.stereo[:, 0] if d.sample_rate == SAMPLE_RATE else None
        if ref is not None:  # same samples up to 16-bit quantisation
            assert np.abs(wav - ref).max() < 1e-3
    assert not list(out.glob("audio/*/user.wav"))

    quarantine = list(iter_dicts(out / "quarantine.jsonl.gz"))
    got = {}
    for q in quarantine:
        got[q["reason"]] = got.get(q["reason"], 0) + 1
        assert q["detail"] and q["source"] == "moshi-finetune" and q["item"].startswith(str(index))
    assert got == EXPECTED_REASONS
    stats = json.loads((out / "stats.json").read_text())["ingest"]["counts"]
    assert stats["written"] == 3 and stats["read"] == 3 + sum(EXPECTED_REASONS.values())
    assert stats["quarantined"] == sum(EXPECTED_REASONS.values())
    for reason, n in EXPECTED_REASONS.items():
        assert stats[f"quarantined/{reason}"] == n
    assert stats["resampled"] == 1
    assert stats["words/model"] == sum(len(d.words["model"]) for d in dialogues)
    assert stats["words/user"] == sum(len(d.words["user"]) for d in dialogues)


def test_keep_user_audio_and_rerun_is_a_noop(dataset, tmp_path):
    index, dialogues = dataset
    out = tmp_path / "run"
    cfg = IngestConfig(keep_user_audio=True)
    first = ingest(cfg, index, out)
    c = next(c for c in read_manifest(out / "conversations.jsonl.gz", Conversation)
             if c.id == "audio/conv0")
    user, _ = sf.read(str(RunDir(out).resolve(c.audio.user)))
    assert np.abs(user - dialogues[0].stereo[:, 1]).max() < 1e-3
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = ingest(cfg, index, out)
    assert again.skipped and again.counts == first.counts
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_interrupted_run_resumes_without_duplicates(dataset, tmp_path):
    index, _ = dataset
    out = tmp_path / "run"
    cfg = IngestConfig()
    ingest(cfg, index, out)
    # simulate a crash: the final manifest is back to one record and the DONE marker is gone
    rows = list(iter_dicts(out / "conversations.jsonl.gz"))
    from duplexalign.manifest import write_manifest

    write_manifest(out / "conversations.jsonl.gz", rows[:1])
    RunDir(out).clear_done("ingest")
    stats = ingest(cfg, index, out)
    ids = [d["id"] for d in iter_dicts(out / "conversations.jsonl.gz")]
    assert sorted(ids) == ["audio/conv0", "audio/conv1", "audio/conv2"]
    assert stats.counts["resumed"] == 1 and stats.counts["written"] == 2
    assert stats.counts["quarantined"] == sum(EXPECTED_REASONS.values())  # not doubled
    assert stats.counts["words/model"] == sum(len(d["words"]["model"]) for d in rows)


def test_speaker_map_and_default_channel():
    doc = {"alignments": [["a", [0, 1], "bot"], ["b", [1, 2], "human"], ["c", [2, 3], "x"]]}
    cfg = IngestConfig(speaker_map={"bot": "model", "human": "user"}, default_channel="user")
    words = parse_alignments(doc, cfg)
    assert [w.text for w in words.model] == ["a"] and [w.text for w in words.user] == ["b", "c"]


def test_missing_input_is_one_clear_error(tmp_path, capsys):
    assert cli(["ingest", str(tmp_path / "nope"), "--format", "moshi-finetune",
                "--out", str(tmp_path / "o")]) == 2
    assert "input_missing" in capsys.readouterr().err


def test_rerun_keeps_duplicates_and_forgets_fixed_items(tmp_path, dialogues):
    root = tmp_path / "data"
    good = write_moshi(root, "a", dialogues[0])
    bad = write_moshi(root, "b", dialogues[1], doc={"alignments": [["x", [2, 1], "SPEAKER_1"]]})
    index = write_index(root, [good, bad, good])  # the third line repeats the first id
    out = tmp_path / "run"
    first = ingest(IngestConfig(), index, out)
    assert first.counts["quarantined/duplicate_id"] == 1
    assert first.counts["quarantined/time_reversed"] == 1
    write_moshi(root, "b", dialogues[1])  # the user fixes b's side files, not the index:
    assert ingest(IngestConfig(), index, out).skipped  # the input digest covers the index only
    RunDir(out).clear_done("ingest")  # so the user asks for the rerun (rm RUN/.done/ingest)
    second = ingest(IngestConfig(), index, out)
    assert not second.skipped and second.counts["resumed"] == 1 and second.counts["written"] == 1
    reasons = [q["reason"] for q in iter_dicts(out / "quarantine.jsonl.gz")]
    assert reasons == ["duplicate_id"]  # the fixed item left the quarantine, the duplicate stayed
    assert second.counts["conversations"] == 2 and second.counts["quarantined"] == 1


def test_the_alignment_files_meta_is_kept_on_the_record():
    """The sandbox's ground truth travels in the log's `meta`; the oracle reads it from there."""
    from duplexalign.ingest.moshi_finetune import _meta

    doc = {"alignments": [], "meta": {"sandbox": {"turns": []}, "scenario": "s1"},
           "text_conditions": {"description": "calm"}}
    assert _meta(doc) == {"sandbox": {"turns": []}, "scenario": "s1",
                          "text_conditions": {"description": "calm"}}
    assert _meta({"alignments": [], "meta": "not an object"}) == {}
