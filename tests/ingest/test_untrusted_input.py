"""Ingest on a log bundle received from someone else: paths confined to the input folder, special
files never opened, damaged gzip salvaged up to the damage, no silent drops, moshi-finetune speaker
semantics, and an input digest that looks at the input only."""

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duplexalign.errors import BadInput
from duplexalign.ingest.base import Found, IngestConfig, Rejected
from duplexalign.ingest.fdb import read as read_fdb
from duplexalign.ingest.files import confine, input_root
from duplexalign.ingest.jsonl import read as read_jsonl
from duplexalign.ingest.moshi_finetune import parse_alignments
from duplexalign.ingest.moshi_finetune import read as read_moshi
from duplexalign.ingest.stage import input_digest
from duplexalign.manifest import iter_dicts, read_manifest
from duplexalign.records import Conversation
from duplexalign.runs import RunDir
from ingest.helpers import ingest

ALIGN = {"alignments": [["hi", [0.1, 0.3], "SPEAKER_MAIN"], ["yo", [0.5, 0.7], "SPEAKER_1"]]}
WORDS = {"model": [["hi", 0.1, 0.3]], "user": [["yo", 0.5, 0.7]]}


def _stereo(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.full((int(24000 * seconds), 2), 0.1, np.float32), 24000)


@pytest.fixture
def bundle(tmp_path):
    """An input folder `data/` next to an `outside/` folder holding a 'secret' wav + transcript."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    for folder in (data, outside):
        _stereo(folder / "secret.wav")
        (folder / "secret.json").write_text(json.dumps(ALIGN))
    return data, outside


def _reasons(results) -> list[str]:
    return [r.reason if isinstance(r, Rejected) else "ok" for r in results]


def test_moshi_index_paths_outside_the_input_are_quarantined(bundle):
    data, outside = bundle
    (data / "link.wav").symlink_to(outside / "secret.wav")
    (data / "link.json").symlink_to(outside / "secret.json")
    (data / "half.wav").symlink_to(data / "secret.wav")  # symlink inside: fine
    (data / "half.json").symlink_to(outside / "secret.json")  # ... its transcript is not
    lines = [{"path": "../outside/secret.wav"}, {"path": str(outside / "secret.wav")},
             {"path": "link.wav"}, {"path": "half.wav"}, {"path": "secret.wav"},
             {"path": "/proc/self/environ"}, {"path": "/dev/zero"}]
    index = data / "index.jsonl"
    index.write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = list(read_moshi(index, IngestConfig()))
    assert _reasons(got) == ["path_outside_input"] * 4 + ["ok", "special_file", "special_file"]
    assert "allow_outside_paths" in got[0].detail
    # opted in: outside files are read, but /proc and /dev never are
    got = list(read_moshi(index, IngestConfig(allow_outside_paths=True)))
    assert _reasons(got) == ["ok"] * 5 + ["special_file", "special_file"]
    assert got[0].conversation.source.path == str((outside / "secret.wav").resolve())


@pytest.mark.timeout(20)
def test_fifo_is_never_opened(bundle):
    data, _ = bundle
    os.mkfifo(data / "pipe.wav")  # opening a FIFO for reading would block forever
    os.mkfifo(data / "pipe2.json")
    _stereo(data / "pipe2.wav")
    (data / "index.jsonl").write_text('{"path": "pipe.wav"}\n{"path": "pipe2.wav"}\n')
    assert _reasons(read_moshi(data / "index.jsonl", IngestConfig())) == ["special_file"] * 2
    line = {"id": "a", "words": WORDS, "audio": "pipe.wav"}
    (data / "log.jsonl").write_text(json.dumps(line) + "\n")
    assert _reasons(read_jsonl(data / "log.jsonl", IngestConfig())) == ["special_file"]


def test_jsonl_audio_fields_are_confined(bundle, tmp_path):
    data, outside = bundle
    lines = [{"id": "a", "words": WORDS, "audio": "../outside/secret.wav"},
             {"id": "b", "words": WORDS, "audio": {"model": str(outside / "secret.wav")}},
             {"id": "c", "words": WORDS, "audio": {"user": "/proc/self/environ"}},
             {"id": "d", "words": WORDS, "audio": "secret.wav"}]
    (data / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = list(read_jsonl(data / "log.jsonl", IngestConfig()))
    assert _reasons(got) == ["path_outside_input", "path_outside_input", "special_file", "ok"]
    stats = ingest(IngestConfig(format="jsonl"), data / "log.jsonl", tmp_path / "run")
    assert stats.counts["written"] == 1 and stats.counts["quarantined/path_outside_input"] == 2
    # nothing of the outside file reached the run folder
    assert [p.name for p in (tmp_path / "run" / "audio").iterdir()] == ["d"]


def _fdb_sample(folder: Path) -> None:
    folder.mkdir(parents=True)
    chunks = {"text": "hi", "chunks": [{"text": "hi", "timestamp": [0.1, 0.3]}]}
    (folder / "output.json").write_text(json.dumps(chunks))
    (folder / "input.json").write_text(json.dumps(chunks))


def test_fdb_side_files_and_symlinked_folders(tmp_path):
    data, outside = tmp_path / "fdb", tmp_path / "outside"
    for name in ("a", "b", "c"):
        _fdb_sample(data / name)
    _fdb_sample(outside / "s")
    (outside / "secret.json").write_text('{"token": "hunter2"}')
    (data / "b" / "metadata.json").symlink_to(outside / "secret.json")
    (data / "c" / "metadata.json").write_text('{"task": "pause"}')
    (data / "elsewhere").symlink_to(outside / "s")  # symlinked sample folder, outside
    (data / "again").symlink_to(data / "a")  # symlinked sample folder, inside
    cfg = IngestConfig(format="fdb", require_audio=False)
    got = {r.item if isinstance(r, Rejected) else r.item: r for r in read_fdb(data, cfg)}
    assert {Path(k).name: (v.reason if isinstance(v, Rejected) else "ok") for k, v in
            got.items()} == {"again": "symlinked_folder", "elsewhere": "path_outside_input",
                             "a": "ok", "b": "path_outside_input", "c": "ok"}
    assert isinstance(got[str(data / "c")], Found)
    assert got[str(data / "c")].conversation.meta["fdb"] == {"metadata": {"task": "pause"}}
    stats = ingest(cfg, data, tmp_path / "run")  # every skipped folder is counted
    assert stats.counts["read"] == 5 and stats.counts["written"] == 2
    assert stats.counts["quarantined/symlinked_folder"] == 1
    assert stats.counts["quarantined/path_outside_input"] == 2
    written = list(read_manifest(tmp_path / "run" / "conversations.jsonl.gz", Conversation))
    assert "hunter2" not in json.dumps([c.model_dump(mode="json") for c in written])


def _full_flush_gzip(lines: list[bytes]) -> tuple[bytes, list[int]]:
    """A gzip member whose every line starts a byte-aligned, independent deflate block; returns
    the bytes and the offset at which each line's compressed data starts."""
    c = zlib.compressobj(wbits=31)
    out, offsets = bytearray(c.compress(b"")), []
    for line in lines:
        offsets.append(len(out))
        out += c.compress(line) + c.flush(zlib.Z_FULL_FLUSH)
    out += c.flush()
    return bytes(out), offsets


def test_gzip_corrupted_mid_stream_keeps_every_line_before_the_damage(tmp_path):
    lines = [json.dumps({"id": f"c{i}", "duration": 2.0, "words": WORDS, "pad": "x" * i})
             .encode() + b"\n" for i in range(300)]
    blob, offsets = _full_flush_gzip(lines)
    bad = bytearray(blob)
    bad[offsets[150] + 2: offsets[150] + 40] = b"\xff" * 38  # damage inside line 150's block
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "log.jsonl.gz"
    path.write_bytes(bytes(bad))
    got = list(read_jsonl(path, IngestConfig()))
    assert [c.id for c in got[:150]] == [f"c{i}" for i in range(150)]  # all 150 good lines
    assert isinstance(got[-1], Rejected) and got[-1].reason == "input_unreadable"
    assert got[-1].item.startswith(f"{path}:")
    stats = ingest(IngestConfig(format="jsonl"), path, tmp_path / "run")  # no crash, nothing lost
    assert stats.counts["written"] >= 150 and stats.counts["quarantined/input_unreadable"] == 1
    ids = [d["id"] for d in iter_dicts(tmp_path / "run" / "conversations.jsonl.gz")]
    assert ids[:150] == [f"c{i}" for i in range(150)]


def test_gzip_members_and_padding_read_whole(tmp_path):
    lines = [json.dumps({"id": f"c{i}", "duration": 2.0, "words": WORDS}).encode() + b"\n"
             for i in range(10)]
    blob = b"".join(_full_flush_gzip(lines[i:i + 5])[0] for i in (0, 5)) + b"\0" * 64
    (tmp_path / "log.jsonl.gz").write_bytes(blob)
    assert [c.id for c in read_jsonl(tmp_path / "log.jsonl.gz", IngestConfig())] == \
        [f"c{i}" for i in range(10)]


def test_unknown_channel_keys_are_quarantined_not_dropped(tmp_path):
    line = {"id": "a", "duration": 2.0, "words": {**WORDS, "assistant": [["lost", 1.0, 1.2]]}}
    (tmp_path / "log.jsonl").write_text(json.dumps(line) + "\n")
    (got,) = read_jsonl(tmp_path / "log.jsonl", IngestConfig())
    assert got.reason == "unknown_channel" and "assistant" in got.detail


def test_a_quarantined_record_does_not_claim_its_id(tmp_path):
    bad = {"id": "x", "duration": 2.0, "words": {"model": [["a", 0.1, 0.2]], "user": []}}
    good = {"id": "x", "duration": 2.0, "words": WORDS}
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "log.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in (bad, good, good)))
    out = tmp_path / "run"
    stats = ingest(IngestConfig(format="jsonl"), src, out)
    convs = list(read_manifest(out / "conversations.jsonl.gz", Conversation))
    assert [(c.id, c.source.path) for c in convs] == [("x", f"{src}:2")]  # the valid one
    first = [(q["item"], q["reason"]) for q in iter_dicts(out / "quarantine.jsonl.gz")]
    assert first == [(f"{src}:1", "empty_channel_user"), (f"{src}:3", "duplicate_id")]
    assert stats.counts["quarantined/empty_channel_user"] == 1
    # an interrupted run resumed: same manifest, same reasons for the same lines
    RunDir(out).clear_done("ingest")
    again = ingest(IngestConfig(format="jsonl"), src, out)
    assert again.counts["resumed"] == 1 and again.counts["written"] == 0
    assert [(q["item"], q["reason"]) for q in iter_dicts(out / "quarantine.jsonl.gz")] == first


def test_input_digest_of_a_file_ignores_its_siblings(tmp_path):
    src = tmp_path / "log.jsonl"
    src.write_text("{}\n")
    before = input_digest(src)
    for i in range(50):
        (tmp_path / f"unrelated-{i}.txt").write_text(str(i))
    (tmp_path / "sub").mkdir()
    assert input_digest(src) == before
    src.write_text("{} \n")
    assert input_digest(src) != before
    # a folder input is the folder: a new file in it changes the digest
    folder = input_digest(tmp_path)
    (tmp_path / "sub" / "new.jsonl").write_text("{}\n")
    assert input_digest(tmp_path) != folder


def test_moshi_finetune_any_other_label_is_the_user():
    doc = {"alignments": [["hello", [0.1, 0.4], "SPEAKER_MAIN"], ["hey", [0.5, 0.7], "Alice"],
                          ["there", [0.8, 1.0], "SPEAKER_MAIN"], ["bye", [1.2, 1.4], "spk-9"]]}
    words = parse_alignments(doc, IngestConfig())
    assert [w.text for w in words.model] == ["hello", "there"]
    assert [w.text for w in words.user] == ["hey", "bye"]
    # speaker_map stays the explicit override; default_channel=None restores strictness
    words = parse_alignments(doc, IngestConfig(speaker_map={"Alice": "model"}))
    assert [w.text for w in words.model] == ["hey"]
    assert [w.text for w in words.user] == ["hello", "there", "bye"]
    with pytest.raises(BadInput) as e:
        parse_alignments(doc, IngestConfig(default_channel=None))
    assert e.value.reason == "unknown_speaker"
    with pytest.raises(BadInput) as e:
        parse_alignments({"alignments": [["a", [0, 1], 7]]}, IngestConfig())
    assert e.value.reason == "bad_schema"


SEGMENTS = st.sampled_from(["..", ".", "a", "b", "in_link", "out_link", "loop", "x.wav", ""])


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("confine")
    root, outside = base / "root", base / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (root / "a" / "in_link").symlink_to(root / "a" / "b")
    (root / "a" / "out_link").symlink_to(outside)
    (root / "loop").symlink_to(root / "loop")
    return root, outside


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(parts=st.lists(SEGMENTS, max_size=6), absolute=st.booleans())
def test_confine_never_lets_a_path_out(tree, parts, absolute):
    root, outside = tree
    base = outside if absolute else root / "a"
    path = Path(base, *parts)
    try:
        real = confine(path, input_root(root), IngestConfig())
    except BadInput as e:
        assert e.reason in ("path_outside_input", "bad_path")
        resolved = None
        try:
            resolved = path.resolve()
        except RuntimeError:  # a symlink loop
            assert e.reason == "bad_path"
        if resolved is not None:
            assert e.reason == "path_outside_input" and not resolved.is_relative_to(root)
    else:
        assert real.is_relative_to(root.resolve()) and real == path.resolve()
