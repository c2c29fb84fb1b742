"""Ingest + segmentation throughput in conversations/s per core, without audio decoding.

Run: NO_TORCH_COMPILE=1 .venv/bin/python bench/ingest.py [--n 10000]

Generates N two-channel conversations (about 60 words each, 30 s, alternating turns) as one JSONL
file, then measures in one single-threaded process, side by side: (1) the floor, parsing each line
with `json.loads` and validating it into a `Conversation`; (2) the full ingest stage with the `jsonl`
reader (parse, validation reasons, manifest writing, stats, provenance); (3) segmentation of every
written conversation into replies/turns plus the floor timeline. It prints conversations per
CPU-second (= per core, the process is single-threaded) and the ratios to the floor and to the goal
of 1,000 conversations/s/core for ingest + segmentation. Last, it reads the same lines from a
`.jsonl.gz` with `ingest.files.read_lines` (streaming zlib that salvages the lines before damage)
and with the standard `gzip` module, and prints the ratio.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import tempfile
import time
from pathlib import Path

from duplexalign.ingest.base import IngestConfig
from duplexalign.ingest.files import read_lines
from duplexalign.ingest.stage import run
from duplexalign.manifest import read_manifest
from duplexalign.records import Conversation
from duplexalign.segments import conversation_segments, floor_timeline

GOAL = 1000.0


def make_input(path: Path, n: int, seed: int = 0) -> int:
    """Write `n` synthetic conversations to `path`; returns the total word count."""
    rng = random.Random(seed)
    vocab = "yes no the a weather today tomorrow please thanks what how where okay".split()
    total = 0
    with open(path, "w") as f:
        for i in range(n):
            words = {"model": [], "user": []}
            t = 0.2
            for turn in range(6):
                ch = "user" if turn % 2 == 0 else "model"
                for _ in range(10):
                    d = rng.uniform(0.15, 0.35)
                    words[ch].append([rng.choice(vocab), round(t, 3), round(t + d, 3)])
                    t += d + rng.uniform(0.02, 0.1)
                t += rng.uniform(0.3, 1.2)
            total += sum(len(v) for v in words.values())
            f.write(json.dumps({"id": f"c{i:06d}", "duration": round(t + 0.5, 3),
                                "words": words}) + "\n")
    return total


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of `fn()`."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "logs.jsonl"
        words = make_input(src, args.n)
        lines = src.read_bytes().splitlines()

        def floor() -> None:
            for raw in lines:
                d = json.loads(raw)
                ws = {ch: [{"text": t, "start": a, "end": b} for t, a, b in v]
                      for ch, v in d["words"].items()}
                Conversation.model_validate({**d, "words": ws, "source": {
                    "reader": "x", "path": "x", "digest": ""}})

        def ingest() -> None:
            stats = run(IngestConfig(format="jsonl", input=src), Path(tmp) / "run")
            assert stats.counts["written"] == args.n, stats.counts

        convs: list[Conversation] = []

        def segment() -> None:
            for c in read_manifest(Path(tmp) / "run" / "conversations.jsonl.gz", Conversation):
                segs = conversation_segments(c)
                floor_timeline(segs["model"], segs["user"], c.duration)
                convs.append(c)

        _, floor_cpu = timed(floor)
        ingest_wall, ingest_cpu = timed(ingest)
        seg_wall, seg_cpu = timed(segment)
        gz = Path(tmp) / "logs.jsonl.gz"
        gz.write_bytes(gzip.compress(src.read_bytes(), compresslevel=6))
        counts: list[int] = []
        _, std_cpu = timed(lambda: counts.append(sum(1 for _ in gzip.open(gz, "rb"))))
        _, ours_cpu = timed(lambda: counts.append(sum(1 for _ in read_lines(gz))))
        assert counts == [n_lines := len(lines), n_lines], counts
    n = args.n
    both = ingest_cpu + seg_cpu
    print(f"{n} conversations, {words} words ({words / n:.0f} per conversation), no audio")
    print(f"floor (json.loads + Conversation validation): {n / floor_cpu:10,.0f} conv/s/core")
    print(f"ingest stage (jsonl reader, checks, manifest): {n / ingest_cpu:10,.0f} conv/s/core "
          f"(wall {ingest_wall:.2f} s)")
    print(f"segmentation (+ reading the manifest back):    {n / seg_cpu:10,.0f} conv/s/core "
          f"(wall {seg_wall:.2f} s)")
    print(f"ingest + segmentation:                         {n / both:10,.0f} conv/s/core")
    print(f"ratio ingest stage / floor: {floor_cpu / ingest_cpu:.2f}x;  "
          f"ingest + segmentation / goal {GOAL:.0f}: {n / both / GOAL:.2f}x")
    print(f"gzip lines: read_lines {n / ours_cpu:,.0f} lines/s/core, gzip module "
          f"{n / std_cpu:,.0f}; ratio read_lines / gzip module: {std_cpu / ours_cpu:.2f}x")


if __name__ == "__main__":
    main()
