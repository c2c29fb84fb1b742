"""The local LLM judge with one server slot against two: the same requests, side by side.

Run: NO_TORCH_COMPILE=1 .venv/bin/python bench/judge_slots.py [--threads 2] [--cases 24]
Starts the real local llama-server (the default judge model) once per slot count, warms each
slot's prompt cache with one request of other cases (the rubric prefix; not timed), then sends the
content-judge requests of `--cases` labelled judge cases (judges/data/judge_cases_v1.yaml, lean
template, no answer cache) with 2 requests in flight, as the sandbox demo's annotate stage does.
Prints wall seconds and requests/s per slot count and the ratio slots=2 over slots=1. Measure on
an idle machine: llama.cpp threads spin at barriers and collapse when another process holds a core.
"""

from __future__ import annotations

import argparse
import logging
import time

from duplexalign.judges.cases import load_cases, to_conversation
from duplexalign.judges.content import ContentJudge, LLMJudgeConfig
from duplexalign.judges.llm import LLMClient, LLMFailure
from duplexalign.judges.server import LocalLLMServer


def requests(cases: list) -> list:
    """The lean-template judge requests of `cases` (one or more per conversation)."""
    judge = ContentJudge(None, LLMJudgeConfig(template="judge_lean_v1"))
    convs = [to_conversation(c.id, c.turns) for c in cases]
    return [chunk.request for conv in convs for chunk in judge.chunks(conv)]


def timed(slots: int, threads: int, warm: list, reqs: list, model: str) -> float:
    """Wall seconds for `reqs` with 2 in flight on a fresh server with `slots` slots, after one
    untimed request of `warm` per slot."""
    with LocalLLMServer(model, threads=threads, slots=slots) as srv:
        client = LLMClient(srv.base_url, srv.model_name, concurrency=2, timeout=600)
        client.run_many(warm[:slots])
        t0 = time.perf_counter()
        out = client.run_many(reqs)
        wall = time.perf_counter() - t0
    failed = [r for r in out if isinstance(r, LLMFailure)]
    assert not failed, failed[:1]
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--model", default="qwen")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cases = load_cases()
    reqs, warm = requests(cases[:args.cases]), requests(cases[args.cases:args.cases + 2])
    print(f"{len(reqs)} judge requests from {args.cases} cases; threads {args.threads}; "
          "2 in flight", flush=True)
    walls = {}
    for slots in (1, 2):
        walls[slots] = timed(slots, args.threads, warm, reqs, args.model)
        print(f"slots {slots}: {walls[slots]:6.1f} s, {len(reqs) / walls[slots]:.3f} requests/s",
              flush=True)
    print(f"slots 2 / slots 1 throughput: {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
