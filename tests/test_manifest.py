"""manifest: streaming JSONL(.gz) read/write, resume with skip-done, atomic finalise, crash tails."""

import gzip

import pytest

from duplexalign.errors import ManifestError
from duplexalign.manifest import ManifestWriter, iter_dicts, read_manifest, write_manifest
from duplexalign.records import Word


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
def test_round_trip_records(tmp_path, name):
    words = [Word(text=f"w{i}", start=i, end=i + 0.5) for i in range(3)]
    assert write_manifest(tmp_path / name, words) == 3
    assert list(read_manifest(tmp_path / name, Word)) == words
    if name.endswith(".gz"):
        assert (tmp_path / name).read_bytes()[:2] == b"\x1f\x8b"  # really gzip


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
def test_resume_keeps_old_records_and_skips_their_ids(tmp_path, name):
    p = tmp_path / name
    write_manifest(p, [{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    with ManifestWriter(p) as w:
        assert "a" in w and w.count == 2
        assert w.write({"id": "a", "v": 99}) is False  # already there: skipped
        assert w.write({"id": "c", "v": 3}) is True
    assert list(iter_dicts(p)) == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "c", "v": 3}]


def test_resume_false_starts_over(tmp_path):
    p = tmp_path / "m.jsonl.gz"
    write_manifest(p, [{"id": "a"}])
    with ManifestWriter(p, resume=False) as w:
        w.write({"id": "b"})
    assert [d["id"] for d in iter_dicts(p)] == ["b"]


def test_nothing_under_the_final_name_until_close(tmp_path):
    p = tmp_path / "m.jsonl.gz"
    w = ManifestWriter(p)
    w.write({"id": "a"})
    w.flush()
    assert not p.exists() and w.partial.exists()
    w.close()
    assert p.exists() and not w.partial.exists()


def test_exception_leaves_partial_that_a_rerun_resumes(tmp_path):
    p = tmp_path / "m.jsonl.gz"
    with pytest.raises(RuntimeError), ManifestWriter(p) as w:
        w.write({"id": "a"})
        raise RuntimeError("crash")
    assert not p.exists()
    with ManifestWriter(p) as w:
        assert "a" in w
        w.write({"id": "b"})
    assert [d["id"] for d in iter_dicts(p)] == ["a", "b"]


def test_crash_truncated_gzip_yields_complete_lines(tmp_path):
    p = tmp_path / "m.jsonl.gz"
    write_manifest(p, [{"id": str(i), "pad": "x" * 50} for i in range(200)])
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])  # the tail of the member is gone
    got = list(iter_dicts(p))
    assert 0 < len(got) < 200
    assert [d["id"] for d in got] == [str(i) for i in range(len(got))]
    with ManifestWriter(p) as w:  # a resumed writer keeps what was readable
        assert w.count == len(got)
        w.write({"id": "new"})
    assert [d["id"] for d in iter_dicts(p)][-1] == "new"


def test_unfinished_last_line_of_plain_file_is_dropped(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "a"}\n{"id": "b", "x": ')
    assert list(iter_dicts(p)) == [{"id": "a"}]


def test_garbage_in_the_middle_is_an_error(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(ManifestError, match=":2:"):
        list(iter_dicts(p))


def test_not_gzip_under_gz_name_is_an_error(tmp_path):
    p = tmp_path / "m.jsonl.gz"
    p.write_text('{"id": "a"}\n')
    with pytest.raises(ManifestError):
        list(iter_dicts(p))


def test_invalid_record_names_the_record(tmp_path):
    p = tmp_path / "m.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write('{"id": "w1", "text": "a", "start": 2, "end": 1}\n')
    with pytest.raises(ManifestError, match="record 0"):
        list(read_manifest(p, Word))


def test_missing_manifest_reads_empty(tmp_path):
    assert list(iter_dicts(tmp_path / "nope.jsonl.gz")) == []


def test_text_that_is_not_valid_unicode_is_written_as_escapes(tmp_path):
    # A lone surrogate (from input decoded with errors="surrogateescape") must not fail the write.
    p = tmp_path / "m.jsonl.gz"
    with ManifestWriter(p) as w:
        w.write({"id": "a", "text": "bad \udc80 byte"})
        w.write({"id": "b", "text": "fine é"})
    assert [d["text"] for d in iter_dicts(p)] == ["bad \udc80 byte", "fine é"]
    with ManifestWriter(p) as w:  # resume rewrites the kept records the same way
        assert not w.write({"id": "a", "text": "again"})
    assert [d["id"] for d in iter_dicts(p)] == ["a", "b"]


def test_group_reader_merge_joins_groups_in_order():
    from duplexalign.manifest import GroupReader

    rows = [("a", 1), ("a", 2), ("c", 3), ("b", 4)]
    g = GroupReader(rows, key=lambda r: r[0])
    assert g.take("a") == [("a", 1), ("a", 2)]
    assert g.take("b") == []          # "c" is next: "b" comes later in the stream
    assert g.take("c") == [("c", 3)]
    assert g.take("d") == []
    assert list(g.rest()) == [("b", 4)]  # out of order: reported, never lost
