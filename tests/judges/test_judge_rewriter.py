"""The rewriter against a fake server: prompt shape, refusal of near-identical or still-flagged
rewrites, and replies inserted after a silence."""

from __future__ import annotations

import pytest
from judgefakes import FakeOpenAI, judge_responder, payload_schema

from duplexalign.judges.content import ContentJudge, LLMJudgeConfig
from duplexalign.judges.llm import LLMClient
from duplexalign.judges.rewriter import Rewriter, RewriteRejected, similarity

CONTEXT = [("user", "who wrote romeo and juliet, mail me at jo@x.org"), ("model", "um"),
           ("user", "who was it")]


def scripted(replies):
    """Rewrite requests get `replies` in turn; judge requests go to the judge responder."""
    def respond(payload):
        if "replies" in payload_schema(payload)["properties"]:
            return judge_responder(payload)
        return {"reply": replies.pop(0)}
    return respond


def client(url):
    return LLMClient(url, "fake", timeout=2, max_retries=0)


def test_messages_regenerate_with_hints_and_the_rejected_draft():
    rw = Rewriter(client("http://127.0.0.1:9/v1"))
    msgs = rw.messages(CONTEXT, ["factuality"], "Charles Dickens wrote it.")
    system = msgs[0]["content"]
    assert "fact" in system.lower() and "Charles Dickens wrote it." in system
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"].startswith("<user_speech>") and "[EMAIL]" in msgs[1]["content"]
    assert rw.redactions["email"] == 1


def test_near_identical_rewrite_is_refused_and_resampled():
    with FakeOpenAI(scripted(["Charles Dickens wrote it!", "William Shakespeare wrote it."])) as s:
        rw = Rewriter(client(s.url))
        assert rw.rewrite(CONTEXT, ["factuality"], "Charles Dickens wrote it.") == \
            "William Shakespeare wrote it."
        temps = [p["temperature"] for p in s.payloads]
        assert temps == [0.0, 0.7]


def test_rewrite_still_flagged_by_the_judge_is_refused():
    replies = ["That is wrong, it was Dickens.", "Still wrong, Dickens.", "wrong again"]
    with FakeOpenAI(scripted(replies)) as s:
        c = client(s.url)
        rw = Rewriter(c, judge=ContentJudge(c, LLMJudgeConfig()))
        with pytest.raises(RewriteRejected) as e:
            rw.rewrite(CONTEXT, ["factuality"], "Charles Dickens wrote it.")
        assert e.value.reason == "still_flagged"


def test_write_reply_after_silence():
    with FakeOpenAI(scripted(["It was Shakespeare."])) as s:
        rw = Rewriter(client(s.url), judge=ContentJudge(client(s.url), LLMJudgeConfig()))
        assert rw.write_reply(CONTEXT) == "It was Shakespeare."
        assert "stayed silent" in s.payloads[0]["messages"][0]["content"]


def test_similarity():
    assert similarity("Hello, there!", "hello there") == 1.0
    assert similarity("Paris.", "It is Canberra.") < 0.5
