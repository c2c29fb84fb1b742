"""The map-style stages on a two-node Ray cluster (127.0.0.1, started and stopped here) write what
the local engine writes, survive a killed worker and resume after a killed driver.

Real components throughout: ingest transcribes stereo espeak-ng speech with whisper (bundled
tiny.en) in each worker; pairs speaks its chosen replies with espeak-ng (reproducible mode) in each
worker, with the sandbox oracle as the rewriter; streams encodes with the sandbox's MelRVQ codec
and tokenizer. Every manifest is compared by its decompressed bytes and every wav and shard byte
for byte (stats.json and provenance.json hold times and are compared by their counts only).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from factories import issue

ray = pytest.importorskip("ray")

from duplexalign.engine import (  # noqa: E402
    EngineConfig,
    map_timings,
    ordered_map,
    worker_pids,
)
from duplexalign.ingest.base import IngestConfig  # noqa: E402
from duplexalign.ingest.stage import run as run_ingest  # noqa: E402
from duplexalign.manifest import iter_dicts, write_manifest  # noqa: E402
from duplexalign.pairs.config import PairsConfig  # noqa: E402
from duplexalign.pairs.stage import run as run_pairs  # noqa: E402
from duplexalign.records import (  # noqa: E402
    ChannelAudio,
    ChannelWords,
    Conversation,
    JudgeInfo,
    Source,
    Word,
)
from duplexalign.runs import RunDir  # noqa: E402
from duplexalign.sandbox.oracle import OracleRewriter  # noqa: E402
from duplexalign.speech.audio import merge_channels, place, write_audio  # noqa: E402
from duplexalign.speech.voices import get_voice  # noqa: E402
from duplexalign.streams.stage import StreamsConfig  # noqa: E402
from duplexalign.streams.stage import run as run_streams  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "src" / "duplexalign" / "sandbox" / "assets"


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    return ray_cluster


def on_ray(cluster) -> EngineConfig:
    return EngineConfig(kind="ray", address=cluster.address, workers=2)


def _files(run: Path) -> dict[str, bytes]:
    """Every output file's bytes; `.gz` manifests by their decompressed bytes."""
    out = {}
    for p in sorted(run.rglob("*")):
        if p.is_file() and p.name not in ("stats.json", "provenance.json"):
            rel = str(p.relative_to(run))
            out[rel] = gzip.decompress(p.read_bytes()) if rel.endswith(".gz") else p.read_bytes()
    return out


def _counts(run: Path) -> dict:
    return {k: v["counts"] for k, v in json.loads((run / "stats.json").read_text()).items()}


def assert_same_run(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    assert [k for k in fa if fa[k] != fb[k]] == []
    assert _counts(a) == _counts(b)


def test_ray_map_keeps_input_order_through_a_small_window_and_raises_worker_errors(cluster):
    def make():  # pickled by value (a local function), so the workers need no test module
        def square(x: int) -> int:
            if x < 0:
                raise ValueError(f"negative {x}")
            return x * x
        return square

    eng = on_ray(cluster).model_copy(update={"in_flight": 2})
    items = list(range(40))
    got = list(ordered_map(eng, make, items, skip=lambda x: x % 3 == 0))
    assert got == [x if x % 3 == 0 else x * x for x in items]
    # calls of up to 4 items, skipped items in between (they never travel)
    batched = eng.model_copy(update={"batch": 4})
    map_timings(clear=True)
    assert list(ordered_map(batched, make, items, skip=lambda x: x % 7 == 0)) == \
        [x if x % 7 == 0 else x * x for x in items]
    (t,) = map_timings(clear=True)
    assert (t.kind, t.workers, t.items) == ("ray", 2, 34)
    assert 34 / 4 <= t.calls < 34  # batched, not item by item
    # results before a failing item come out first, as from a loop
    got = []
    with pytest.raises(ValueError, match="negative -1") as err:
        for r in ordered_map(batched, make, [1, 2, -1, 3]):
            got.append(r)
    assert got == [1, 4]
    assert any("in the Ray worker" in note for note in err.value.__notes__)
    assert worker_pids() == []  # the pools are gone


def test_workers_get_the_engine_environment_and_a_failing_factory_raises_its_own_error(cluster):
    def make_env():
        import os as os_

        def env(_):
            return (os_.environ.get("DUPLEXALIGN_TEST_ENV"), os_.environ.get("OMP_NUM_THREADS"),
                    os_.environ.get("NO_TORCH_COMPILE"))
        return env

    # Ray itself would set OMP_NUM_THREADS to the actor's CPUs (1 here): the engine's env wins
    eng = on_ray(cluster).model_copy(update={"env": {"DUPLEXALIGN_TEST_ENV": "on",
                                                     "OMP_NUM_THREADS": "3"}})
    assert set(ordered_map(eng, make_env, range(4))) == {("on", "3", "1")}

    def make_broken():
        raise FileNotFoundError("no model at /nowhere")

    with pytest.raises(FileNotFoundError, match="no model at /nowhere") as err:
        list(ordered_map(on_ray(cluster), make_broken, range(4)))
    assert any("in the Ray worker" in note for note in err.value.__notes__)
    assert worker_pids() == []


def test_each_idle_worker_pulls_the_next_call_so_slow_items_spread_evenly(cluster):
    def make():
        def slow_pid(x: int) -> int:
            time.sleep(0.3)
            return os.getpid()
        return slow_pid

    # 8 slow items with batch 8: one call of 8 would leave a worker idle; the calls shrink at
    # the end of the input (2, 2, 2, 1, then 1 to the first worker free) and go to idle workers
    pids = list(ordered_map(on_ray(cluster).model_copy(update={"batch": 8}), make, range(8)))
    per_worker = sorted(pids.count(p) for p in set(pids))
    assert len(per_worker) == 2 and per_worker[0] >= 3, pids


def test_the_last_items_go_to_an_idle_worker_not_behind_a_slow_one(cluster):
    def make():
        def sleep_pid(seconds: float) -> int:
            time.sleep(seconds)
            return os.getpid()
        return sleep_pid

    # one call per item; the first is slow. Queued behind it (as a second call held by its
    # worker), items 2 and 3 would wait 2.5 s while the other worker idles after item 1
    pids = list(ordered_map(on_ray(cluster).model_copy(update={"batch": 1}), make,
                            [2.5, 0.05, 0.05, 0.05]))
    assert pids[1] != pids[0] and pids[2] == pids[3] == pids[1], pids


def test_each_worker_of_a_pool_runs_on_cpus_of_its_own_and_so_do_the_processes_it_starts(cluster):
    def make():
        import os as os_
        import subprocess as sp
        import sys as sys_

        def where(_):  # the actor and a process it starts (as the TTS server is started)
            child = sp.run([sys_.executable, "-c",
                            "import os; print(sorted(os.sched_getaffinity(0)))"],
                           capture_output=True, text=True, check=True).stdout.strip()
            return os_.getpid(), str(sorted(os_.sched_getaffinity(0))), child
        return where

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs 2 CPUs")
    eng = on_ray(cluster).model_copy(update={"batch": 1})
    got = set(ordered_map(eng, make, range(6)))
    by_pid = {pid: (mine, child) for pid, mine, child in got}
    assert len(by_pid) == 2  # two actors, one CPU each, different ones
    cpus = [json.loads(mine) for mine, _ in by_pid.values()]
    assert all(len(c) == 1 and c[0] in allowed for c in cpus) and cpus[0] != cpus[1]
    assert all(mine == child for mine, child in by_pid.values())
    unpinned = set(ordered_map(eng.model_copy(update={"pin_cpus": False}), make, range(4)))
    assert {mine for _, mine, _ in unpinned} == {str(allowed)}


# ---------------------------------------------------------------- ingest with ASR

def _say(voice: str, text: str, start: float) -> tuple[float, object]:
    return start, get_voice(voice).synthesize(text).wav


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Two short stereo recordings (model left, user right) and a broken file."""
    root = tmp_path_factory.mktemp("rec")
    texts = [("hello can you help me", "of course what do you need"),
             ("what time is it", "it is almost noon")]
    for i, (user, model) in enumerate(texts):
        u, m = [_say("user_0", user, 0.2)], [_say("model", model, 2.2)]
        write_audio(root / f"s{i}.wav", merge_channels([place(m, 4.5), place(u, 4.5)]))
    (root / "broken.wav").write_bytes(b"RIFF....not a wave file")
    return root


def test_ingest_with_asr_on_ray_equals_local_and_resumes(cluster, recordings, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    cfg = IngestConfig(input=recordings, format="audio")
    run_ingest(cfg, local)
    stats = run_ingest(cfg.model_copy(update={"engine": on_ray(cluster)}), remote)
    assert stats.counts["written"] == 2 and stats.counts["quarantined"] == 1
    assert all(len(d["words"]["model"]) >= 3 for d in iter_dicts(remote / "conversations.jsonl.gz"))
    assert_same_run(local, remote)
    assert RunDir(remote).is_done("ingest")
    # a rerun after a lost DONE marker transcribes nothing again
    RunDir(remote).clear_done("ingest")
    again = run_ingest(cfg.model_copy(update={"engine": on_ray(cluster)}), remote)
    assert again.counts["resumed"] == 2 and again.counts["written"] == 0
    assert _files(local) == _files(remote)


# ---------------------------------------------------------------- pairs and streams

ANSWERS = ["the capital of france is paris", "water boils at one hundred degrees",
           "a spider has eight legs"]


def _spoken(voice: str, text: str, start: float):
    sp = get_voice(voice).synthesize(text)
    return sp.wav, [Word(text=w.text, start=start + w.start, end=start + w.end) for w in sp.words]


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    """Three annotated conversations, each with a content issue (rewrite) and a silence (insert):
    six candidates, each needing new TTS speech."""
    run = tmp_path_factory.mktemp("annotated") / "run"
    convs, issues = [], []
    judge = JudgeInfo(name="test")
    for i, answer in enumerate(ANSWERS):
        _, user = _spoken("user_0", "what is the capital of france", 0.3)
        t = user[-1].end + 0.4
        mw, model = _spoken("model", "i do not know", t)
        t2 = model[-1].end + 1.0
        _, user2 = _spoken("user_1", "hello are you there", t2)
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


PAIRS = PairsConfig(max_pairs_per_conversation=4)
STREAMS = StreamsConfig(codec="semantic", codec_path=str(ASSETS / "codec.safetensors"),
                        tokenizer=str(ASSETS / "tokenizer.model"))


@pytest.fixture(scope="module")
def local_run(annotated, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("local") / "run"
    shutil.copytree(annotated, run)
    stats = run_pairs(PAIRS, run, rewriter=OracleRewriter())
    assert stats.counts["written"] == 2 * len(ANSWERS)
    run_streams(STREAMS, run)
    return run


def _copy(annotated: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(annotated, run)
    return run


def test_pairs_and_streams_on_ray_equal_local(cluster, annotated, local_run, tmp_path):
    run = _copy(annotated, tmp_path)
    run_pairs(PAIRS.model_copy(update={"engine": on_ray(cluster)}), run,
              rewriter=OracleRewriter())
    run_streams(STREAMS.model_copy(update={"engine": on_ray(cluster)}), run)
    assert len(list((run / "pairs" / "audio").rglob("*.wav"))) == 4 * len(ANSWERS)
    assert list((run / "streams").glob("*.safetensors"))
    assert_same_run(local_run, run)


def test_a_worker_killed_mid_stage_is_retried_and_nothing_is_lost_or_doubled(
        cluster, annotated, local_run, tmp_path):
    run = _copy(annotated, tmp_path)
    killed: list[tuple[int, bool]] = []

    def kill_one_worker():
        deadline = time.time() + 60
        while not worker_pids() and time.time() < deadline:
            time.sleep(0.01)
        pid = worker_pids()[0]
        os.kill(pid, signal.SIGKILL)  # the items on it are in flight: submitted, not returned
        killed.append((pid, RunDir(run).is_done("pairs")))

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    stats = run_pairs(PAIRS.model_copy(update={"engine": on_ray(cluster)}), run,
                      rewriter=OracleRewriter())
    killer.join()
    (pid, done_then), = killed
    assert not done_then  # killed mid-stage
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    dropped = list(iter_dicts(run / "pairs" / "dropped.jsonl.gz"))
    assert stats.counts["written"] == 2 * len(ANSWERS), dropped
    ids = [d["id"] for d in iter_dicts(run / "pairs" / "candidates.jsonl.gz")]
    assert len(ids) == len(set(ids)) == 2 * len(ANSWERS)
    assert _files(run) == pairs_only(local_run)


def pairs_only(run: Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(run).items() if not k.startswith(("streams", ".done/streams"))}


DRIVER = """
import sys
from duplexalign.engine import EngineConfig
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.stage import run
from duplexalign.sandbox.oracle import OracleRewriter
cfg = PairsConfig(max_pairs_per_conversation=4,
                  engine=EngineConfig(kind="ray", address=sys.argv[2], workers=2))
run(cfg, sys.argv[1], rewriter=OracleRewriter())
"""


def _readable(partial: Path) -> int:
    """Records of a manifest being written that can be read back so far."""
    try:
        return sum(1 for _ in iter_dicts(partial))
    except (OSError, EOFError, ValueError):
        return 0


def test_a_driver_killed_mid_stage_resumes_on_rerun_doing_only_missing_work(
        cluster, annotated, local_run, tmp_path):
    run = _copy(annotated, tmp_path)
    audio = run / "pairs" / "audio"
    partial = run / "pairs" / "candidates.jsonl.gz.partial"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(run), cluster.address],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        # kill once the first conversation's pairs are flushed (the workers write the wavs
        # ahead of the driver, so the manifest is what tells)
        while time.time() < deadline and driver.poll() is None:
            if _readable(partial) >= 2:
                break
            time.sleep(0.005)
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert not RunDir(run).is_done("pairs")
    before = {d["id"] for d in iter_dicts(partial)}
    assert 0 < len(before) < 2 * len(ANSWERS)
    mtimes = {p: p.stat().st_mtime_ns for p in audio.rglob("*.wav") if p.parent.name in before}
    run_pairs(PAIRS.model_copy(update={"engine": on_ray(cluster)}), run,
              rewriter=OracleRewriter())
    # the pairs on disk before the kill were not built again
    assert mtimes and all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert _files(run) == pairs_only(local_run)


def test_annotate_on_ray_equals_local(cluster, annotated, tmp_path):
    """Timing rules (and a judge, when configured) per conversation on the workers; the driver
    writes the issues and the progress in conversation order."""
    from duplexalign.annotate.stage import AnnotateConfig
    from duplexalign.annotate.stage import run as run_annotate

    runs = {}
    for label, eng in (("local", EngineConfig()), ("ray", on_ray(cluster))):
        run = tmp_path / label
        run.mkdir()
        shutil.copy(annotated / "conversations.jsonl.gz", run)
        RunDir(run).mark_done("ingest")
        stats = run_annotate(AnnotateConfig(judge="none", progress=False, engine=eng), run)
        assert stats.counts["conversations/annotated"] == len(ANSWERS)
        runs[label] = run
    assert any(iter_dicts(runs["ray"] / "annotations.jsonl.gz"))  # the silences were found
    assert_same_run(runs["local"], runs["ray"])
