"""runs: DONE markers keyed by config digest, stats sections, provenance, atomic writes."""

import json

from duplexalign.runs import RunDir, StageStats, atomic_write_text, digest_json, sha256_file


def test_done_marker_with_digest(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert not rd.is_done("ingest")
    rd.mark_done("ingest", "abc")
    assert rd.is_done("ingest") and rd.is_done("ingest", "abc")
    assert not rd.is_done("ingest", "other")  # config changed: rerun
    assert not rd.is_done("annotate")
    rd.clear_done("ingest")
    assert not rd.is_done("ingest")


def test_stats_sections_are_merged(tmp_path):
    rd = RunDir(tmp_path)
    a = StageStats("ingest")
    a.add("written", 3)
    a.add("quarantined/bad_json")
    rd.write_stats(a)
    b = StageStats("annotate", values={"seconds": 1.5})
    rd.write_stats(b)
    got = rd.read_stats()
    assert got["ingest"] == {"counts": {"quarantined/bad_json": 1, "written": 3}}
    assert got["annotate"] == {"counts": {}, "seconds": 1.5}


def test_provenance_records_config_versions_and_inputs(tmp_path):
    rd = RunDir(tmp_path)
    rd.write_provenance("ingest", {"format": "jsonl"}, {"input": "x", "input_digest": "d"})
    prov = json.loads(rd.path("provenance.json").read_text())["ingest"]
    assert prov["config"] == {"format": "jsonl"}
    assert prov["inputs"]["input_digest"] == "d"
    assert "python" in prov["packages"] and "pydantic" in prov["packages"]
    assert "git" in prov and prov["time"].endswith("Z")


def test_resolve_relative_and_absolute(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.resolve("audio/a/model.wav") == tmp_path / "audio/a/model.wav"
    assert rd.resolve("/abs/x.wav").as_posix() == "/abs/x.wav"


def test_digests(tmp_path):
    assert digest_json({"a": 1, "b": 2}) == digest_json({"b": 2, "a": 1})
    assert digest_json({"a": 1}) != digest_json({"a": 2})
    p = tmp_path / "f.txt"
    atomic_write_text(p, "abc")
    assert p.read_text() == "abc" and [x.name for x in tmp_path.iterdir()] == ["f.txt"]
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
