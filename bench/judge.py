"""Judge-client throughput at 1, 8 and 64 requests in flight against a fake server with 200 ms latency.

Run: .venv/bin/python bench/judge.py [--requests 256] [--latency 0.2]
Prints requests/s per concurrency and the speed-up over sequential (1 in flight), measured side by
side in one run. The server is the stdlib fake of tests/judges/judgefakes.py on 127.0.0.1 answering
real content-judge payloads (3 replies each) after the injected latency; the cache is off.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "judges"))
from judgefakes import FakeOpenAI  # noqa: E402

from duplexalign.judges.content import ContentJudge, LLMJudgeConfig  # noqa: E402
from duplexalign.judges.llm import LLMClient  # noqa: E402
from duplexalign.records import ChannelWords, Conversation, Source, Word  # noqa: E402


def conversation(k: int) -> Conversation:
    user, model = [], []
    for t in range(3):
        base = t * 6.0
        user += [Word(text=w, start=base + i * 0.3, end=base + i * 0.3 + 0.25)
                 for i, w in enumerate(f"question {k} number {t} please".split())]
        model += [Word(text=w, start=base + 2 + i * 0.3, end=base + 2 + i * 0.3 + 0.25)
                  for i, w in enumerate(f"answer {k} to {t} is wrong".split())]
    return Conversation(id=f"c{k}", words=ChannelWords(model=model, user=user), duration=20.0,
                        source=Source(reader="bench", path="-", digest="0"))


def serve(latency: float, port_q: mp.Queue, stop: mp.Event) -> None:
    """Run the fake server in this (child) process until `stop` is set."""
    with FakeOpenAI(latency=latency) as srv:
        port_q.put(srv.url)
        stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--latency", type=float, default=0.2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    judge = ContentJudge(LLMClient("http://unused", "fake"), LLMJudgeConfig())
    requests = [judge.chunks(conversation(k))[0].request for k in range(args.requests)]
    rates = {}
    port_q, stop = mp.Queue(), mp.Event()
    proc = mp.Process(target=serve, args=(args.latency, port_q, stop), daemon=True)
    proc.start()
    url = port_q.get(timeout=30)
    try:
        for inflight in (1, 8, 64):
            n = min(args.requests, 24) if inflight == 1 else args.requests
            client = LLMClient(url, "fake", concurrency=inflight, timeout=30)
            t0 = time.perf_counter()
            out = client.run_many(requests[:n])
            dt = time.perf_counter() - t0
            assert all(not hasattr(r, "kind") for r in out), "a request failed"
            rates[inflight] = n / dt
            print(f"in flight {inflight:>3}: {n:>4} requests in {dt:6.2f} s = "
                  f"{rates[inflight]:7.1f} req/s  speed-up x{rates[inflight] / rates[1]:5.1f}")
    finally:
        stop.set()
        proc.join(10)
    print(f"goal >= 40x sequential at 64 in flight: {'met' if rates[64] / rates[1] >= 40 else 'NOT met'}")


if __name__ == "__main__":
    main()
