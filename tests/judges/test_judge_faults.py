"""The LLM transport against a fake OpenAI server that misbehaves: retries, fallbacks, cache,
bounded concurrency, typed failures, and an annotate run that survives a dying server."""

from __future__ import annotations

import asyncio
import json

import pytest
from factories import conversation, spread
from judgefakes import FakeOpenAI

from duplexalign.annotate.stage import AnnotateConfig, run
from duplexalign.judges.llm import LLMClient, LLMFailure, LLMRequest
from duplexalign.manifest import iter_dicts, write_manifest
from duplexalign.records import Conversation
from duplexalign.runs import RunDir

SCHEMA = {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"]}


def echo(payload):
    return {"reply": payload["messages"][-1]["content"]}


def client(url, **kw) -> LLMClient:
    kw = {"timeout": 0.5, "max_retries": 3, "backoff": 0.01, "backoff_max": 0.02, **kw}
    return LLMClient(url, "fake", **kw)


def ask(c: LLMClient, text: str = "hi"):
    return c.chat_json_sync([{"role": "user", "content": text}], SCHEMA)


@pytest.mark.parametrize("fault,kind", [
    ("500", "retries/http_status"), ("429", "retries/http_status"), ("hang", "retries/timeout"),
    ("garbage", "retries/parse"), ("partial", "retries/parse"),
])
def test_transient_faults_are_retried(fault, kind):
    with FakeOpenAI(echo, hang_for=1.0) as srv:
        srv.faults = [fault, fault]
        c = client(srv.url)
        assert ask(c).data == {"reply": "hi"}
        assert c.stats[kind] == 2 and c.stats["requests"] == 3


def test_persistent_failure_becomes_a_typed_record():
    with FakeOpenAI(echo) as srv:
        srv.always = "500"
        c = client(srv.url, max_retries=2)
        [res] = c.run_many([LLMRequest([{"role": "user", "content": "hi"}], SCHEMA)])
        assert isinstance(res, LLMFailure)
        assert (res.kind, res.status, res.attempts) == ("http_status", 500, 3)
        assert len(res.key) == 64


def test_non_retryable_status_fails_at_once():
    with FakeOpenAI(echo) as srv:
        srv.always = "404"  # a 4xx other than 429: asking again cannot help
        c = client(srv.url)
        [res] = c.run_many([LLMRequest([{"role": "user", "content": "hi"}], SCHEMA)])
        assert isinstance(res, LLMFailure)
        assert (res.kind, res.status, res.attempts) == ("http_status", 404, 1)
        assert srv.count == 1


def test_server_rejecting_json_schema_falls_back_to_json_object():
    with FakeOpenAI(echo) as srv:
        srv.always = "reject_schema"
        c = client(srv.url)
        assert ask(c).dialect == "json_object"
        assert ask(c, "again").data == {"reply": "again"}
        types = [p.get("response_format", {}).get("type") for p in srv.payloads]
        assert types == ["json_schema", "json_object", "json_object"]


def test_cache_answers_a_rerun_without_requests(tmp_path):
    with FakeOpenAI(echo) as srv:
        first = ask(client(srv.url, cache_dir=tmp_path))
        c2 = client(srv.url, cache_dir=tmp_path)
        again = ask(c2)
        assert again.cached and again.data == first.data and again.key == first.key
        assert srv.count == 1 and c2.stats["cache_hits"] == 1


def test_identical_requests_queued_together_are_asked_once(tmp_path):
    """With one slot, a request identical to one answered while it waited is served from the
    cache (temperature 0: the answer could not differ), so a batch pays for distinct requests."""
    with FakeOpenAI(echo, latency=0.05) as srv:
        c = client(srv.url, cache_dir=tmp_path, concurrency=1, timeout=5)
        reqs = [LLMRequest([{"role": "user", "content": t}], SCHEMA) for t in "aaba"]
        out = c.run_many(reqs)
        assert [r.data["reply"] for r in out] == list("aaba")
        assert srv.count == 2 and c.stats["cache_hits"] == 2
        assert len({r.key for r in out}) == 2


def test_concurrency_is_bounded_and_results_keep_input_order():
    with FakeOpenAI(echo, latency=0.1) as srv:
        c = client(srv.url, concurrency=3, timeout=5)
        reqs = [LLMRequest([{"role": "user", "content": str(i)}], SCHEMA) for i in range(10)]
        out = c.run_many(reqs)
        assert [r.data["reply"] for r in out] == [str(i) for i in range(10)]
        assert 2 <= srv.max_active <= 3


def test_stream_yields_every_index_once():
    with FakeOpenAI(echo, latency=0.02) as srv:
        c = client(srv.url, concurrency=4, timeout=5)
        srv.faults = ["500"] * 3

        async def go():
            reqs = [LLMRequest([{"role": "user", "content": str(i)}], SCHEMA) for i in range(6)]
            return [i async for i, _ in c.stream_json(reqs)]

        assert sorted(asyncio.run(go())) == list(range(6))


# ---- the annotate stage against a misbehaving server ----

W = spread


def conversations(n: int) -> list[Conversation]:
    out = []
    for k in range(n):
        bad = "that is wrong" if k % 2 else "paris is lovely"
        out.append(conversation(
            id=f"conv{k}", user=W(f"what is the capital of country {k}", 0, 2)
            + W("and what about spain", 8, 9.5),
            model=W(bad, 2.5, 3.5) + W("you are stupid", 10, 11)))
    return out


def annotate(run_dir, url, **kw):
    cfg = AnnotateConfig(llm={"url": url, "model": "fake", "timeout": 0.5, "max_retries": 1,
                              "concurrency": 4}, progress=False, **kw)
    return run(cfg, run_dir)


def issue_ids(run_dir) -> set[str]:
    return {d["id"] for d in iter_dicts(run_dir / "annotations.jsonl.gz")}


def test_annotate_loses_nothing_when_the_server_faults_and_dies(tmp_path):
    convs = conversations(12)
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    for d in (clean, faulty):
        write_manifest(d / "conversations.jsonl.gz", convs)
        RunDir(d).mark_done("ingest")
    with FakeOpenAI() as srv:
        annotate(clean, srv.url)
    expected = issue_ids(clean)
    # conversations 1,3,5,... : factuality on R1; all: tone on R2
    assert len(expected) == 6 + 12

    with FakeOpenAI(hang_for=1.0, die_after=9) as srv:
        srv.faults = ["500", "garbage", "hang", "partial", "429", None, "500", "500"]
        s1 = annotate(faulty, srv.url)
    failures = [json.loads(x) for x in (faulty / "annotate_failures.jsonl").read_text().splitlines()]
    assert failures and s1.counts["conversations/failed"] == len(
        {f["conversation_id"] for f in failures})
    assert all(f["kind"] in ("connect", "http_status", "timeout", "parse") for f in failures)
    assert not (faulty / ".done" / "annotate").exists()
    assert issue_ids(faulty) < expected

    with FakeOpenAI() as srv2:  # a fresh server at a new URL: the resume asks only what is missing
        s2 = annotate(faulty, srv2.url)
        asked = srv2.count
    assert issue_ids(faulty) == expected
    assert (faulty / "annotate_failures.jsonl").read_text() == ""
    assert (faulty / ".done" / "annotate").exists()
    assert asked == s1.counts["conversations/failed"]  # one call per conversation left
    assert s2.counts["issues/content/factuality"] == 6 and s2.counts["issues/content/tone"] == 12
    assert s2.values["conversations_done"] == 12
