"""The Ray engine against the local engine: pairs (TTS-bound) and ingest with ASR, side by side.

    NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 python bench/engine.py            # ~12 min on 2 cores
    NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 python bench/engine.py --pairs-conversations 8 \
        --recordings 4 --repeat 1                                          # quick check

Builds the inputs once (offline, real components): `--pairs-conversations` annotated conversations
spoken with espeak-ng, each with a content issue (rewrite) and a silence (insert), so every pair
needs new TTS speech in the model's voice; and `--recordings` stereo recordings of a few turns each
for `ingest --format audio` (whisper tiny.en in every worker). Then runs each stage cold (a fresh
run directory, models loaded by the stage as a user would see it) on the local engine, on Ray with
1 worker and on Ray with 2 workers, one after the other, on a private one-machine Ray cluster with 2
CPUs started here (no dashboard), and checks that every run wrote the same manifests and wavs.
Each run starts with nothing of earlier runs waiting to be written back to disk (`os.sync()`
before the clock starts), as a stage run on its own would.
Prints the cold wall seconds of each stage run (what a user waits for: the main figures; with
`--repeat N` the engines take turns N times, each round starting with the next engine, and the
figures are medians) and the ratios:
overhead = ray 1 worker / local (goal <= 1.2x) and scaling = ray 1 worker / ray 2 workers (goal
>= 1.7x on 2 cores), with two ceilings for the latter measured in the same run: the machine's
(two processes spinning pure Python against one) and the TTS's (two plain processes speaking
lines in the model's voice against one, no Ray: what the machine gives the pairs workers' own
work). Beside them, from `engine.map_timings`: the startup (actor processes,
imports and worker factories; local: the factory), a fixed cost that more workers do not shrink,
and the steady-state throughput (items / (map wall - startup)) with its ratio. The defaults (2000
pairs, ~20 s of TTS on one core; 24 recordings of ~12 s) are sized so that the startup is a small
share of a cold run, as it is for a real stage; a tiny input measures mostly the startup. Record the figures in
docs/benchmarks.md with the command line and the machine's load (`uptime` before and after).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray starts its workers 15 nice levels below the driver by default; on a shared box that alone
# makes every worker lose to the local engine's process, so both run at the same priority here.
os.environ.setdefault("RAY_worker_niceness", "0")

from duplexalign.engine import EngineConfig, map_timings  # noqa: E402
from duplexalign.ingest.base import IngestConfig  # noqa: E402
from duplexalign.ingest.stage import run as run_ingest  # noqa: E402
from duplexalign.manifest import write_manifest  # noqa: E402
from duplexalign.pairs.config import PairsConfig  # noqa: E402
from duplexalign.pairs.stage import run as run_pairs  # noqa: E402
from duplexalign.records import (  # noqa: E402
    ChannelAudio,
    ChannelWords,
    Conversation,
    Issue,
    JudgeInfo,
    Source,
    Word,
)
from duplexalign.runs import RunDir  # noqa: E402
from duplexalign.sandbox.oracle import OracleRewriter  # noqa: E402
from duplexalign.segments import reply_target  # noqa: E402
from duplexalign.speech.audio import merge_channels, place, write_audio  # noqa: E402
from duplexalign.speech.voices import get_voice  # noqa: E402

QUESTIONS = ["what is the capital of france", "how many legs does a spider have",
             "why is the sky blue", "what is the boiling point of water",
             "who wrote the odyssey", "how far away is the moon"]
ANSWERS = ["the capital of france is paris", "a spider has eight legs",
           "sunlight scatters in the air and blue light scatters the most",
           "water boils at one hundred degrees", "homer wrote the odyssey",
           "the moon is about three hundred eighty thousand kilometers away"]


def _spoken(voice: str, text: str, start: float):
    sp = get_voice(voice).synthesize(text)
    return sp.wav, [Word(text=w.text, start=start + w.start, end=start + w.end) for w in sp.words]


def _issue(conv: Conversation, kind: str, category: str, span: tuple[float, float], **kw) -> Issue:
    rid, rng = reply_target(conv, span[0])
    return Issue(id=f"{conv.id}:{category}", conversation_id=conv.id, kind=kind, category=category,
                 reply_span=span, reply_id=rid, reply_words=rng, judge=JudgeInfo(name="bench"),
                 reason=f"{category} problem", **kw)


def annotated_run(root: Path, n: int) -> Path:
    """`n` annotated conversations (two pairs to build each)."""
    run = root / "annotated"
    convs, issues = [], []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        _, user = _spoken(f"user_{i % 6}", q, 0.3)
        t = user[-1].end + 0.4
        mw, model = _spoken("model", "i am not sure about that", t)
        t2 = model[-1].end + 3.0  # room for the longer improved reply
        _, user2 = _spoken(f"user_{(i + 1) % 6}", "hello are you still there", t2)
        duration = user2[-1].end + 4.0
        cid = f"c{i:03d}"
        write_audio(run / "audio" / f"{cid}.model.wav", place([(t, mw)], duration))
        conv = Conversation(id=cid, words=ChannelWords(model=model, user=user + user2),
                            duration=duration, audio=ChannelAudio(model=f"audio/{cid}.model.wav"),
                            source=Source(reader="bench", path="-", digest="0"))
        convs.append(conv)
        issues += [_issue(conv, "content", "factuality", (model[0].start, model[-1].end), score=1,
                          # unique per conversation: the TTS cache must not serve the local run
                          improved_reply=f"{ANSWERS[i % len(ANSWERS)]}, as note {i} says"),
                   _issue(conv, "timing", "unresponsiveness", (user2[-1].end, duration))]
    write_manifest(run / "conversations.jsonl.gz", convs)
    write_manifest(run / "annotations.jsonl.gz", issues)
    RunDir(run).mark_done("ingest")
    RunDir(run).mark_done("annotate")
    return run


def recordings(root: Path, n: int) -> Path:
    """`n` stereo recordings (model left, user right) of four turns, about 10 s each."""
    d = root / "recordings"
    for i in range(n):
        q, a = QUESTIONS[i % len(QUESTIONS)], ANSWERS[i % len(ANSWERS)]
        u1, m1 = _spoken(f"user_{i % 6}", q, 0.3), None
        t = u1[1][-1].end + 0.5
        m1 = _spoken("model", a, t)
        t2 = m1[1][-1].end + 0.8
        u2 = _spoken(f"user_{i % 6}", "thank you that is helpful", t2)
        t3 = u2[1][-1].end + 0.5
        m2 = _spoken("model", "you are welcome is there anything else", t3)
        dur = m2[1][-1].end + 0.5
        model = place([(t, m1[0]), (t3, m2[0])], dur)
        user = place([(0.3, u1[0]), (t2, u2[0])], dur)
        write_audio(d / f"rec{i:03d}.wav", merge_channels([model, user]))
    return d


def _outputs(run: Path) -> dict[str, str]:
    """The sha256 of every manifest (decompressed) and wav of a run folder."""
    return {str(p.relative_to(run)): hashlib.sha256(
                gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            ).hexdigest()
            for p in sorted(run.rglob("*")) if p.name.endswith((".jsonl.gz", ".wav"))}


def _link_wavs(src: str, dst: str) -> None:
    """Copy one input file of a fresh run folder; the conversations' wavs, which the stages only
    read, are hard links (half a GB per 1000 conversations not written again every round)."""
    if src.endswith(".wav"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def _evict(run: Path) -> None:
    """Write a run folder's files to disk and drop them from the page cache (they stay on disk);
    the inputs linked in (`_link_wavs`) stay cached, as the next round reads them."""
    os.sync()
    for p in run.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.stat().st_nlink == 1:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_stage(name: str, fresh, once, engines: dict[str, EngineConfig], root: Path,
                repeat: int = 1) -> dict[str, list[tuple[float, float, float]]]:
    """Per engine, one entry per round: (cold wall s of `once(engine, run_dir)` on a run folder
    made by `fresh(run_dir)` (not timed), startup s, steady items/s). The engines take turns in
    each of the `repeat` rounds, in an order rotated from round to round, so a slow spell or a
    drift of the machine hits all of them alike; the outputs must agree."""
    secs: dict[str, list[tuple[float, float, float]]] = {label: [] for label in engines}
    outs = {}
    order = list(engines.items())
    for rnd in range(repeat):
        k = rnd % len(order)  # each round starts with the next engine: none always runs last
        for label, eng in order[k:] + order[:k]:
            run = root / f"{name}-{label.replace(' ', '_')}-{rnd}"
            fresh(run)
            # what earlier rounds (and `fresh`) wrote reaches the disk now, not during the timed
            # run: the kernel writes dirty pages back ~30 s after they were written, so without
            # this each run would be billed for the previous round's wavs (taking a core from two
            # workers, where one worker leaves a core idle for it)
            os.sync()
            map_timings(clear=True)
            cpu = time.process_time()
            wall = _timed(lambda eng=eng, run=run: once(eng, run))
            cpu = time.process_time() - cpu  # this process: the driver (and Ray's threads in it)
            maps = map_timings(clear=True)
            startup = sum(t.startup_s for t in maps)
            items = sum(t.items for t in maps)
            steady = items / max(1e-9, sum(t.wall_s - t.startup_s for t in maps))
            secs[label].append((wall, startup, steady))
            outs[(label, rnd)] = _outputs(run)
            # every round's folder stays until the bench ends: on ext4 without a journal (this
            # box), a file created within a minute or more of thousands being deleted costs a
            # scan past each recently freed inode, under a lock both workers need. Its pages
            # leave the page cache instead, so the rounds do not fill memory as they go
            _evict(run)
            print(f"  {name:7s} {label:14s} round {rnd + 1}: {wall:7.1f} s cold (startup "
                  f"{startup:4.1f} s, {items} items, steady {steady:6.2f} items/s, "
                  f"{sum(t.calls for t in maps)} calls; driver CPU {cpu:5.1f} s)", flush=True)
    first = next(iter(outs.values()))
    assert all(o == first for o in outs.values()), f"{name}: engines wrote different outputs"
    return secs


def _spin(seconds: float) -> int:
    """Pure-Python CPU work for about `seconds` (the machine's own 2-process ceiling)."""
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += sum(i * i for i in range(1000))
    return n


def cpu_ceiling(seconds: float = 5.0) -> float:
    """Throughput of two processes spinning at once over one alone: what the second core gives
    on this machine right now, the bound on any engine's 2-worker scaling."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        one = pool.submit(_spin, seconds).result()
        two = sum(f.result() for f in [pool.submit(_spin, seconds) for _ in range(2)])
    return two / one


def _speak(args: tuple[int, int]) -> float:
    """Seconds to speak `n` distinct model-voice lines from `start` (the pairs workers' TTS)."""
    start, n = args
    from duplexalign.speech.voices import get_voice

    voice = get_voice("model")
    voice.synthesize(f"warm up {start}")
    t0 = time.perf_counter()
    for i in range(start, start + n):
        voice.synthesize(f"{ANSWERS[i % len(ANSWERS)]}, as line {i} says")
    return time.perf_counter() - t0


def tts_ceiling(n: int = 400) -> float:
    """Two plain processes speaking `n` / 2 lines each against one speaking `n` (espeak-ng
    reproducible mode, no Ray): what this machine gives the pairs workers' own work."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        one = pool.submit(_speak, (10_000, n)).result()
        two = max(pool.map(_speak, [(20_000, n // 2), (30_000, n // 2)]))
    return one / two


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs-conversations", type=int, default=1000)
    ap.add_argument("--recordings", type=int, default=24)
    ap.add_argument("--stages", default="pairs,ingest", help="which of pairs,ingest to measure")
    ap.add_argument("--batch", type=int, default=16, help="items per Ray call (engine.batch)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three engines in turn; "
                                                          "the figures are the rounds' medians")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--unpinned", action="store_true",
                    help="also run 1 and 2 Ray workers with engine.pin_cpus off, in the same rounds")
    ap.add_argument("--inputs", help="build the inputs in this folder once and reuse them "
                                     "(default: a temporary folder)")
    args = ap.parse_args()

    import ray

    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    t0 = time.perf_counter()
    stages = args.stages.split(",")
    n_conv = args.pairs_conversations if "pairs" in stages else 0
    n_rec = args.recordings if "ingest" in stages else 0
    inputs = Path(args.inputs) / f"{n_conv}-{n_rec}" if args.inputs else root
    made = inputs / "inputs.done"
    if not made.exists():
        annotated_run(inputs, n_conv)
        recordings(inputs, n_rec)
        made.touch()
    annotated, rec = inputs / "annotated", inputs / "recordings"
    from duplexalign.speech import voices

    voices._LOADED.clear()  # no synthesis cached while building the inputs helps the local run
    print(f"inputs: {args.pairs_conversations} conversations ({2 * args.pairs_conversations} "
          f"pairs), {args.recordings} recordings; built in {time.perf_counter() - t0:.0f} s")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 << 20,
             log_to_driver=False, logging_level="WARNING")
    engines = {"local": EngineConfig(),
               "ray 1 worker": EngineConfig(kind="ray", workers=1, batch=args.batch),
               "ray 2 workers": EngineConfig(kind="ray", workers=2, batch=args.batch)}
    if args.unpinned:
        engines.update({f"{k} unpinned": v.model_copy(update={"pin_cpus": False})
                        for k, v in list(engines.items())[1:]})

    def pairs_once(eng: EngineConfig, run: Path) -> None:
        stats = run_pairs(PairsConfig(max_pairs_per_conversation=4, engine=eng), run,
                          rewriter=OracleRewriter())
        assert stats.counts["written"] > args.pairs_conversations, stats.counts

    def ingest_once(eng: EngineConfig, run: Path) -> None:
        stats = run_ingest(IngestConfig(input=rec, format="audio", engine=eng), run)
        assert stats.counts["written"] == args.recordings, stats.counts

    try:
        once = {"pairs": pairs_once, "ingest": ingest_once}
        fresh = {"pairs": lambda run: shutil.copytree(annotated, run, copy_function=_link_wavs),
                 "ingest": lambda run: None}
        results = {s: bench_stage(s, fresh[s], once[s], engines, root, args.repeat)
                   for s in stages}
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    ceiling = cpu_ceiling()
    speech = tts_ceiling() if "pairs" in stages else None
    med = statistics.median
    print(f"\ncold stage wall seconds (the goals; medians of {args.repeat} round(s), ratios are the "
          f"medians of each round's ratio):\n{'stage':8s} {'local s':>8s} {'ray1 s':>8s} "
          f"{'ray2 s':>8s} {'overhead ray1/local':>20s} {'scaling ray1/ray2':>18s} "
          f"{'speedup local/ray2':>19s}")
    def ratios(a: list[float], b: list[float]) -> list[float]:
        return [x / y for x, y in zip(a, b, strict=True)]

    sets = [("", ["local", "ray 1 worker", "ray 2 workers"])]
    if args.unpinned:
        sets.append((" unpinned", ["local", "ray 1 worker unpinned", "ray 2 workers unpinned"]))
    for stage, s in results.items():
        for tag, names in sets:
            loc, r1, r2 = ([w for w, _, _ in s[k]] for k in names)
            over, scale = ratios(r1, loc), ratios(r1, r2)
            print(f"{stage + tag:8s} {med(loc):8.1f} {med(r1):8.1f} {med(r2):8.1f} "
                  f"{med(over):19.2f}x {med(scale):17.2f}x {med(ratios(loc, r2)):18.2f}x")
            if args.repeat > 1:
                print(f"{'':8s} per round: overhead " + " ".join(f"{x:.2f}" for x in over)
                      + ", scaling " + " ".join(f"{x:.2f}" for x in scale))
    print(f"\nstartup seconds and steady-state items/s (medians):\n{'stage':8s} {'start l':>8s} "
          f"{'start r1':>8s} {'start r2':>8s} {'items/s l':>10s} {'items/s r1':>10s} "
          f"{'items/s r2':>10s} {'steady r2/r1':>13s}")
    for stage, s in results.items():
        for tag, names in sets:
            (sl, tl), (s1, t1), (s2, t2) = ((med(x[1] for x in s[k]), med(x[2] for x in s[k]))
                                            for k in names)
            print(f"{stage + tag:8s} {sl:8.1f} {s1:8.1f} {s2:8.1f} {tl:10.2f} {t1:10.2f} "
                  f"{t2:10.2f} {t2 / t1:12.2f}x")
    print(f"machine ceiling (two processes spinning pure Python against one, same run): "
          f"{ceiling:.2f}x")
    if speech is not None:
        print(f"TTS ceiling (two plain processes speaking the pairs' lines against one, no Ray, "
              f"same run): {speech:.2f}x")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
