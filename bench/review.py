"""The review app at scale: list pages and conversation pages over a 100k-conversation run.

    OMP_NUM_THREADS=1 python bench/review.py                      # 100,000 conversations
    OMP_NUM_THREADS=1 python bench/review.py --conversations 10000 --keep /tmp/review_bench

Writes a synthetic run (each conversation: 24 timed words per channel, 0-3 issues of mixed
categories), builds the review index once, then times, side by side in this run: the first and
the last list page, filtered pages (category, source, undecided, id search), and opening a
conversation near the end through the index against finding it by streaming the manifest (what a
page would cost without the index). Prints milliseconds and the ratio. Figures go in
docs/benchmarks.md with the command line.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from duplexalign.manifest import ManifestWriter, iter_dicts
from duplexalign.runs import ANNOTATIONS, CONVERSATIONS

CATS = [("content", "factuality"), ("content", "tone"), ("timing", "interruption"),
        ("timing", "unresponsiveness"), ("content", "safety")]


def words(start: float, n: int) -> list[dict]:
    return [{"text": f"w{k}", "start": round(start + 0.3 * k, 2),
             "end": round(start + 0.3 * k + 0.25, 2)} for k in range(n)]


def write_run(root: Path, n: int) -> None:
    """The manifests as plain dicts (the index build validates every record)."""
    src = {"reader": "bench", "path": "-", "digest": "0"}
    model, user = words(4.0, 24), words(0.2, 24)
    with ManifestWriter(root / CONVERSATIONS, resume=False) as cw, \
            ManifestWriter(root / ANNOTATIONS, resume=False) as iw:
        for k in range(n):
            cid = f"conv-{k:06d}"
            cw.write({"id": cid, "words": {"model": model, "user": user}, "duration": 20.0,
                      "source": src})
            for j in range(k % 4):
                kind, cat = CATS[(k + j) % len(CATS)]
                iw.write({"id": f"{cid}:{j}", "conversation_id": cid, "reply_id": f"{cid}#r0",
                          "reply_words": [0, 24], "reply_span": [4.0 + j, 11.0], "kind": kind,
                          "category": cat, "score": 1 if kind == "content" else None,
                          "reason": "bench", "judge": {"name": "bench"}})


def timed(fn, repeat: int = 5) -> float:
    """Median milliseconds of `fn()`."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=100_000)
    ap.add_argument("--keep", default=None, help="folder to write the run in (kept)")
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from duplexalign.review.app import create_app

    root = Path(args.keep or tempfile.mkdtemp(prefix="review_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    n = args.conversations
    t = time.perf_counter()
    if not (root / CONVERSATIONS).exists():
        write_run(root, n)
    print(f"run of {n} conversations written in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    c = TestClient(create_app(root, reviewer="bench"), base_url="http://127.0.0.1:8765")
    print(f"index built in {time.perf_counter() - t:.1f} s "
          f"({(root / 'review/index.sqlite').stat().st_size / 2**20:.0f} MiB)")
    last = (n + 49) // 50
    pages = {"list page 1": "/", f"list page {last}": f"/?page={last}",
             "category=tone": "/?category=tone&page=100",
             "source=rule": "/?source=rule&page=100",
             "undecided": "/?undecided=1&page=100", "id search": "/?id=09999"}
    for name, url in pages.items():
        assert c.get(url).status_code == 200
        print(f"{name:>22}: {timed(lambda u=url: c.get(u)):8.1f} ms")
    target = f"conv-{n - 10:06d}"
    page_ms = timed(lambda: c.get("/conversation", params={"id": target}))

    def scan():
        return next(d for d in iter_dicts(root / CONVERSATIONS) if d["id"] == target)

    scan_ms = timed(scan, repeat=2)
    print(f"{'conversation page':>22}: {page_ms:8.1f} ms (index) vs {scan_ms:8.1f} ms to find it "
          f"by streaming the manifest: {scan_ms / page_ms:.0f}x")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
