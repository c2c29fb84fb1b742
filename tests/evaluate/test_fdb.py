"""`evaluate --fdb` / `--write-fdb` on hand-made FDB folders.

The VAD and the judge are fakes here (these tests are about the code around them: which samples
and files feed which rule, how rows aggregate); the real Silero path is compared with FDB's own
code in `bench/fdb_parity.py`. Expected numbers are worked out in the comments.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplexalign.errors import BadInput
from duplexalign.evaluate.fdb.judge import (
    behaviour_request,
    parse_behaviour,
    parse_relevance,
    relevance_request,
)
from duplexalign.evaluate.fdb.layout import find_samples
from duplexalign.evaluate.fdb.score import FdbScorer, aggregate, judge_samples, score_sample
from duplexalign.evaluate.fdb.table import render
from duplexalign.evaluate.fdb.write import write_fdb
from duplexalign.fdb_rules import Chunk, parse_chunks
from duplexalign.judges.llm import LLMFailure, LLMResult

USER_LEVEL, MODEL_LEVEL = 0.1, 0.3


def doc(*words):
    return {"text": " ".join(w[0] for w in words),
            "chunks": [{"text": t, "timestamp": [s, e]} for t, s, e in words]}


def put(folder: Path, **files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        name = name.replace("__", ".")
        if name.endswith(".wav"):
            seconds, level, sr = value
            sf.write(str(folder / name), np.full(int(seconds * sr), level, np.float32), sr,
                     subtype="PCM_16")
        else:
            (folder / name).write_text(json.dumps(value))


class FakeVAD:
    """Speech intervals by file: the user's wav (level 0.1) and the model's (level 0.3)."""

    def __init__(self, user, model):
        self.user, self.model = user, model
        self.calls = []

    def segments(self, wav, sample_rate):
        self.calls.append(sample_rate)
        return list(self.model if wav[0] > 0.2 else self.user)


class FakeJudge:
    model = "fake-judge"

    def __init__(self, answers):
        self.answers = answers
        self.requests = []

    def run_many(self, reqs):
        self.requests += reqs
        return [self.answers.pop(0) for _ in reqs]


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data" / "full_duplex_bench" / "v1_v1.5"
    (d / "instruction").mkdir(parents=True)
    (d / "icc_gt_distribution.json").write_text(json.dumps({"7": [0.2, 0.6, 0.2]}))
    (d / "instruction" / "behavior.txt").write_text("Tag the behaviour.")
    return tmp_path / "data"


@pytest.fixture
def fdb_dir(tmp_path):
    root = tmp_path / "fdb"
    # pause: 1 = three words in 0.5 s (TOR 0), 2 = silent (TOR 0), 3 = a real reply (TOR 1)
    put(root / "synthetic_pause_handling" / "1", pause__json=[{"timestamp": [1, 2]}],
        output__json=doc(("a", 0.0, 0.1), ("b", 0.2, 0.3), ("c", 0.4, 0.5)))
    put(root / "synthetic_pause_handling" / "2", pause__json=[{"timestamp": [1, 2]}],
        output__json=doc())
    put(root / "synthetic_pause_handling" / "3", pause__json=[{"timestamp": [1, 2]}],
        output__json=doc(("a", 0.0, 0.5), ("b", 0.6, 1.5)))
    # turn-taking: user end 2.0; first word at 2.4 -> latency 0.4
    put(root / "candor_turn_taking" / "1", turn_taking__json=[{"timestamp": [2.0, 2.5]}],
        output__json=doc(("yes", 2.4, 2.8), ("it", 3.0, 3.5)))
    # interruption: cut-in ends 5.0, reply starts 4.5 -> latency clipped to 0
    put(root / "synthetic_user_interruption" / "1",
        interrupt__json=[{"context": "tell me a story", "interrupt": "about cats please",
                          "timestamp": [3.0, 5.0]}],
        output__json=doc(("cats", 4.5, 5.0), ("are", 5.1, 5.3), ("great", 5.3, 6.0)),
        input__wav=(10.0, USER_LEVEL, 16000), output__wav=(10.0, MODEL_LEVEL, 16000))
    # backchannel clip "7": 1.0 s of audio, the model says "mm" at 0.1-0.3
    put(root / "icc_backchannel" / "7", output__json=doc(("mm", 0.1, 0.3)),
        output__wav=(1.0, MODEL_LEVEL, 16000))
    return root


def test_find_samples_detects_tasks_and_groups(fdb_dir, tmp_path):
    put(fdb_dir / "v15_interruption" / "1", clean_input__json=doc(), output__json=doc())
    put(fdb_dir / "misc" / "1", output__json=doc())
    got = {(s.group, s.id): s.task for s in find_samples(fdb_dir)}
    assert got[("synthetic_pause_handling", "synthetic_pause_handling/1")] == "pause_handling"
    assert got[("candor_turn_taking", "candor_turn_taking/1")] == "smooth_turn_taking"
    assert got[("synthetic_user_interruption", "synthetic_user_interruption/1")] \
        == "user_interruption"
    assert got[("icc_backchannel", "icc_backchannel/7")] == "backchannel"
    assert got[("v15_interruption", "v15_interruption/1")] == "v1.5"
    assert got[("misc", "misc/1")] == "unknown"
    # a task folder given directly: its name is the group
    only = find_samples(fdb_dir / "icc_backchannel")
    assert [(s.group, s.id, s.task) for s in only] == [("icc_backchannel", "7", "backchannel")]
    with pytest.raises(BadInput, match="input_missing"):
        find_samples(tmp_path / "data")


def test_parse_chunks_keeps_null_end_and_names_bad_chunk():
    assert parse_chunks(doc(("a", 1, None)), "x") == [Chunk("a", 1.0, None)]
    with pytest.raises(BadInput, match="chunk 1"):
        parse_chunks({"chunks": [{"text": "a", "timestamp": [0, 1]}, {"text": "b"}]}, "x")


def test_scores_and_rows(fdb_dir, data_dir):
    vad = FakeVAD(user=[(0.0, 4.0), (4.5, 5.0)], model=[(4.5, 6.0), (6.3, 7.0)])
    sc = FdbScorer(data_dir=data_dir, _vad=vad)
    samples = find_samples(fdb_dir)
    recs = {r["id"]: r for r in (score_sample(s, sc) for s in samples)}
    assert [recs[f"synthetic_pause_handling/{i}"]["tor"] for i in (1, 2, 3)] == [0, 0, 1]
    assert recs["candor_turn_taking/1"]["latency"] == pytest.approx(0.4)
    cut = recs["synthetic_user_interruption/1"]
    assert cut["tor"] == 1 and cut["latency"] == 0.0
    # v1.5 timing: user (0,4),(4.5,5) merged across 0.5 <= 0.6 -> (0,5); model (4.5,6),(6.3,7)
    # merged across 0.3 <= 0.5 -> (4.5,7). Overlap (4.5,5): stop latency 0.5; no model start after
    # the user end 5 -> no response gap
    assert cut["stop_intervals"] == [(4.5, 5.0)] and cut["stop_latency"] == pytest.approx(0.5)
    assert cut["response_latency"] is None
    bc = recs["icc_backchannel/7"]
    # the fake VAD's model segments are scanned: (4.5, 6.0) is 1.5 s, not > 3 s, with no word in
    # it (the clip's "mm" is at 0.1) -> 0 words, 1.5 s: not < 1 -> a turn (TOR 1), still counted;
    # (6.3, 7.0) likewise (0.7 s, 0 words -> backchannel, TOR 0). Segments are clipped to the
    # 1.0 s clip: silero clips ends to the clip, here (4.5, 1.0) and (6.3, 1.0).
    assert bc["backchannels"] == [(4.5, 1.0), (6.3, 1.0)]
    assert bc["tor"] == 0
    assert bc["frequency"] == pytest.approx(2 / 1.0)
    assert 0 < bc["jsd"] <= 1
    assert vad.calls.count(16000) == len(vad.calls)

    rows = aggregate(list(recs.values()), resamples=50)
    pause = rows["synthetic_pause_handling"]
    assert pause["metrics"]["tor"]["value"] == pytest.approx(1 / 3)  # (0 + 0 + 1) / 3
    assert pause["num_samples"] == 3 and pause["failures"] == 0
    assert set(rows["icc_backchannel"]["metrics"]) == {"tor", "frequency", "jsd"}
    assert rows["synthetic_user_interruption"]["metrics"]["stop_latency"]["value"] \
        == pytest.approx(0.5)
    table = render(rows)
    assert "| synthetic_pause_handling | pause_handling | 3 | 0.333 [" in table
    assert "judged columns not scored" in table


def test_backchannel_clip_by_hand(tmp_path, data_dir):
    # clip "7" of 1.0 s; VAD finds (0.1, 0.3) holding "mm": 0.2 s, 1 word -> backchannel, TOR 0.
    # freq = 1 / 1.0; histogram bins 0..int(0.3 / 0.2)=1 of 6 -> JSD vs the human [0.2, 0.6, 0.2]
    from duplexalign.fdb_rules import backchannel_jsd

    put(tmp_path / "bc" / "7", output__json=doc(("mm", 0.1, 0.3)),
        output__wav=(1.0, MODEL_LEVEL, 16000))
    sc = FdbScorer(data_dir=data_dir, _vad=FakeVAD([], [(0.12, 0.34)]))
    (s,) = find_samples(tmp_path / "bc", "backchannel")
    r = score_sample(s, sc)
    assert r["backchannels"] == [(0.1, 0.3)]  # rounded to 0.1 s as silero's return_seconds
    assert (r["tor"], r["frequency"], r["frequency_strict"]) == (0, 1.0, 1.0)
    assert r["jsd"] == pytest.approx(backchannel_jsd([(0.1, 0.3)], 1.0, [0.2, 0.6, 0.2]))
    # an unknown clip name: no human histogram -> JSD left out, said so
    put(tmp_path / "bc2" / "99", output__json=doc(), output__wav=(1.0, MODEL_LEVEL, 16000))
    (s,) = find_samples(tmp_path / "bc2", "backchannel")
    r = score_sample(s, sc)
    assert r["jsd"] is None and "no human histogram" in r["note"]


def test_asr_fallback_crops_at_the_interruption(tmp_path, data_dir):
    class FakeASR:
        def __init__(self):
            self.seconds = None

        def transcribe(self, wav, sr):
            from duplexalign.records import Word

            self.seconds = len(wav) / sr
            return [Word(text="cats", start=0.5, end=0.9), Word(text="purr", start=1.0, end=1.6)]

    put(tmp_path / "f" / "1", interrupt__json=[{"context": "", "interrupt": "",
                                                "timestamp": [1.0, 4.0]}],
        output__wav=(10.0, MODEL_LEVEL, 16000))
    asr = FakeASR()
    sc = FdbScorer(data_dir=data_dir, _asr=asr, overlap_timing=False)
    (s,) = find_samples(tmp_path / "f")
    r = score_sample(s, sc)
    assert asr.seconds == pytest.approx(6.0)  # only what follows the cut-in end at 4.0 s
    assert r["words_from"] == "asr:whisper"
    assert r["words"] == [["cats", 4.5, 4.9], ["purr", 5.0, 5.6]]  # offset by 4.0
    assert r["latency"] == pytest.approx(0.5)


def test_judged_columns(fdb_dir, data_dir):
    put(fdb_dir / "v15" / "1", clean_input__json=doc(("hi", 0, 1)), input__json=doc(),
        clean_output__json=doc(), output__json=doc(("sorry", 2, 3)))
    samples = find_samples(fdb_dir)
    sc = FdbScorer(data_dir=data_dir, overlap_timing=False, _vad=FakeVAD([], []))
    recs = [score_sample(s, sc) for s in samples]
    sc.judge = FakeJudge([LLMResult({"analysis": "on topic", "rating": 4}, "k1", "m", "d"),
                          LLMFailure("k2", "timeout", "slow")])
    judge_samples(samples, recs, sc)
    by_id = {r["id"]: r for r in recs}
    rel, beh = sc.judge.requests
    assert "about cats please" in rel.messages[1]["content"]
    assert "cats are great" in rel.messages[1]["content"]
    assert beh.messages[0]["content"] == "Tag the behaviour."
    assert '"output_noisy": {"text":"sorry","chunks":[{"text":"sorry","timestamp":[2,3]}]}' \
        in beh.messages[1]["content"]
    assert by_id["synthetic_user_interruption/1"]["relevance"] == 4
    assert by_id["v15/1"]["judge_failure"]["kind"] == "timeout"
    rows = aggregate(recs, resamples=20)
    assert rows["synthetic_user_interruption"]["metrics"]["relevance"]["value"] == 4.0


def test_judge_parsers():
    assert parse_relevance('{"analysis": "x", "rating": 5}') == 5
    with pytest.raises(ValueError):
        parse_relevance({"analysis": "x", "rating": 6})
    assert parse_behaviour({"behaviour": ["C_RESUME"]}) == "C_RESUME"
    with pytest.raises(ValueError):
        parse_behaviour({"behaviour": ["C_OTHER"]})
    req = relevance_request("q", "cut", "reply")
    assert req.schema["properties"]["rating"]["maximum"] == 5
    assert behaviour_request("i", {k: [] for k in ("input_clean", "input_noisy", "output_clean",
                                                   "output_noisy")}).schema["required"] \
        == ["behaviour"]


def test_write_fdb_layout_round_trip(tmp_path, data_dir):
    run = tmp_path / "run"
    (run / "timing" / "audio").mkdir(parents=True)
    sr, n = 24000, 24000 * 10
    stereo = np.stack([np.full(n, MODEL_LEVEL, np.float32), np.full(n, USER_LEVEL, np.float32)])
    sf.write(str(run / "timing" / "audio" / "a.wav"), stereo.T, sr, subtype="PCM_16")
    w = lambda t, s, e: {"text": t, "start": s, "end": e}  # noqa: E731
    recs = [
        {"id": "timing-pause-1", "audio": "timing/audio/a.wav",
         "meta": {"probe": "pause", "pauses": [[1.0, 2.5]], "turn_ends": [4.0]},
         "words": {"user": [w("what", 0.2, 0.8), w("is", 2.5, 3.0), w("it", 3.5, 4.0)],
                   "model": [w("uh", 1.5, 1.7), w("it", 4.6, 5.0), w("is", 5.0, 5.5)]}},
        {"id": "timing-turn_end-2", "audio": "timing/audio/a.wav",
         "meta": {"probe": "turn_end", "turn_ends": [3.0]},
         "words": {"user": [w("why", 1.0, 3.0)],
                   "model": [w("because", 3.4, 3.9), w("yes", 4.0, 4.6)]}},
        {"id": "timing-barge_in-3", "audio": "timing/audio/a.wav",
         "meta": {"probe": "barge_in", "question": "why", "turn_starts": [0.5, 5.0],
                  "turn_ends": [2.0, 6.0]},
         "words": {"user": [w("why", 0.5, 2.0), w("wait", 5.0, 5.5), w("sorry", 5.6, 6.0)],
                   "model": [w("so", 3.0, 3.2), w("okay", 6.5, 7.0), w("simply", 7.0, 7.8)]}},
        {"id": "qa-1", "audio": None, "meta": {}, "words": {"user": [], "model": []}},
    ]
    (run / "timing" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    counts = write_fdb(run, tmp_path / "out")
    assert counts == {"skipped": 1, "synthetic_pause_handling": 1,
                      "synthetic_smooth_turn_taking": 1, "synthetic_user_interruption": 1}
    pause = tmp_path / "out" / "synthetic_pause_handling" / "1"
    info = sf.info(str(pause / "input.wav"))
    assert (info.samplerate, info.channels, info.duration) == (16000, 1, 4.0)  # cut at turn end
    assert json.loads((pause / "pause.json").read_text()) == [{"text": "[PAUSE]",
                                                               "timestamp": [1.0, 2.5]}]
    assert [c["text"] for c in json.loads((pause / "output.json").read_text())["chunks"]] == ["uh"]
    cut = tmp_path / "out" / "synthetic_user_interruption" / "1"
    meta = json.loads((cut / "interrupt.json").read_text())[0]
    assert meta == {"context": "why", "interrupt": "wait sorry", "timestamp": [5.0, 6.0]}
    # FDB reads the written folder back: pause TOR 0 ("uh" alone), turn-taking latency 0.4,
    # interruption latency 6.5 - 6.0 = 0.5 (words before the cut-in end are not in output.json)
    sc = FdbScorer(data_dir=data_dir, overlap_timing=False)
    got = {s.task: score_sample(s, sc) for s in find_samples(tmp_path / "out")}
    assert got["pause_handling"]["tor"] == 0
    assert got["smooth_turn_taking"]["latency"] == pytest.approx(0.4)
    assert got["user_interruption"]["latency"] == pytest.approx(0.5)


def test_cli_scores_a_folder(fdb_dir, tmp_path, capsys, monkeypatch, data_dir):
    from duplexalign.cli.main import main

    monkeypatch.setattr("duplexalign.evaluate.fdb.score.FdbScorer.vad",
                        lambda self: FakeVAD([(0.0, 4.0)], [(4.5, 6.0)]))
    rc = main(["evaluate", "--fdb", str(fdb_dir), "--out", str(tmp_path / "o"), "--no-judge",
               "--set", f"data_dir={data_dir}"])
    assert rc == 0
    out = capsys.readouterr().out
    assert ("| candor_turn_taking | smooth_turn_taking | 1 | 1.000 [1.000, 1.000] | - | - | 0.400"
            in out)
    assert (tmp_path / "o" / "fdb" / "results.json").is_file()
    lines = (tmp_path / "o" / "fdb" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 6
    # a broken side file fails its sample (with the reason) and nothing else
    (fdb_dir / "candor_turn_taking" / "1" / "turn_taking.json").write_text("{not json")
    assert main(["evaluate", "--fdb", str(fdb_dir), "--out", str(tmp_path / "o"), "--no-judge",
                 "--set", f"data_dir={data_dir}"]) == 0
    assert "1 sample(s) failed" in capsys.readouterr().out
    recs = [json.loads(x) for x in (tmp_path / "o" / "fdb" / "samples.jsonl").read_text()
            .splitlines()]
    assert [r["failure"]["reason"] for r in recs if "failure" in r] == ["bad_json"]
    rc = main(["evaluate", "--fdb", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: input_missing") and len(err.splitlines()) == 1
