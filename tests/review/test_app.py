"""The review app's routes through FastAPI's test client: list filters and pages, the
conversation page, decisions, and the security rules (host, token, origin, files, escaping)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from factories import conversation, timed
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from runfix import XSS_REASON, XSS_WORD, make_run  # noqa: E402

from duplexalign.manifest import write_manifest  # noqa: E402
from duplexalign.records import PreferencePair, ReplyVariant  # noqa: E402
from duplexalign.review.app import create_app  # noqa: E402
from duplexalign.review.index import RunIndex  # noqa: E402
from duplexalign.review.store import DecisionLog  # noqa: E402
from duplexalign.runs import CONVERSATIONS, PAIRS  # noqa: E402

BASE = "http://127.0.0.1:8765"
SAME = {"Origin": BASE}


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "run")


def client(run: Path, **kw) -> TestClient:
    return TestClient(create_app(run, reviewer=kw.pop("reviewer", "ann"), **kw), base_url=BASE)


def ids(html: str) -> list[str]:
    import re

    return re.findall(r'data-testid="conversation"><td><a href="[^"]*">([^<]*)</a>', html)


def post(c: TestClient, **body):
    return c.post("/api/decisions", json=body, headers=SAME)


def test_list_filters(run):
    c = client(run)
    assert ids(c.get("/").text) == ["conv-a", "conv-b"]
    assert ids(c.get("/?category=tone").text) == ["conv-a"]
    assert ids(c.get("/?source=rule").text) == ["conv-b"]
    assert ids(c.get("/?source=judge").text) == ["conv-a"]
    assert ids(c.get("/?id=-b").text) == ["conv-b"]
    assert ids(c.get("/?id=%25").text) == []  # LIKE wildcards are literal
    assert post(c, target="issue", target_id="a-fact", verdict="confirm").status_code == 200
    assert ids(c.get("/?undecided=1").text) == ["conv-a", "conv-b"]  # a-tone is open
    post(c, target="issue", target_id="a-tone", verdict="reject")
    assert ids(c.get("/?undecided=1").text) == ["conv-b"]
    # undecided is per reviewer: another reviewer still has everything open
    assert ids(client(run, reviewer="bob").get("/?undecided=1").text) == ["conv-a", "conv-b"]


def test_list_pages(tmp_path):
    convs = [conversation(timed("hi there", 0.5), timed("hello", 2.0), 4.0, id=f"c{k:03d}")
             for k in range(120)]
    write_manifest(tmp_path / CONVERSATIONS, convs)
    c = client(tmp_path)
    first = c.get("/").text
    assert ids(first) == [f"c{k:03d}" for k in range(50)]
    assert "120 conversations · page 1 of 3" in first and 'data-testid="prev-page"' not in first
    last = c.get("/?page=3").text
    assert ids(last) == [f"c{k:03d}" for k in range(100, 120)]
    assert 'data-testid="next-page"' not in last


def test_conversation_page_and_decisions_survive_a_reload(run):
    c = client(run)
    page = c.get("/conversation", params={"id": "conv-a"}).text
    assert page.count('data-testid="issue"') == 2
    assert 'data-testid="user-transcript-only"' in page  # user audio was dropped
    assert "/media?path=audio%2Fconv-a%2Fmodel.wav" in page
    r = post(c, target="issue", target_id="a-fact", verdict="edit", text="paris, of course")
    assert r.json()["decision"]["verdict"] == "edit"
    post(c, target="issue", target_id="a-tone", verdict="reject", reason="tone is fine")
    post(c, target="conversation", target_id="conv-a", verdict="rate",
         rating={"at": 30, "coherence": 5, "engagement": 2, "relevance": 4})
    post(c, target="reply", target_id="conv-a#r0", verdict="flag", category="safety")
    page = client(run).get("/conversation", params={"id": "conv-a"}).text  # a fresh app
    assert "paris, of course" in page and "reject: tone is fine" in page
    assert "flagged safety" in page
    assert '<option value="2" selected>' in page  # engagement 2
    got = list(DecisionLog(run).read())
    assert [(d.reviewer, d.target, d.verdict) for d in got] == [
        ("ann", "issue", "edit"), ("ann", "issue", "reject"), ("ann", "conversation", "rate"),
        ("ann", "reply", "flag")]
    conv_b = c.get("/conversation", params={"id": "conv-b"}).text
    assert "user-transcript-only" not in conv_b and "audio%2Fconv-b%2Fuser.wav" in conv_b


def test_bad_decisions_are_refused(run):
    c = client(run)
    assert post(c, target="issue", target_id="nope", verdict="confirm").status_code == 404
    assert post(c, target="issue", target_id="a-fact", verdict="neither").status_code == 422
    assert post(c, target="conversation", target_id="conv-a", verdict="rate",
                rating={"at": 45, "coherence": 1, "engagement": 1,
                        "relevance": 1}).status_code == 422
    assert not DecisionLog(run).path.exists()


def test_pairs_are_blind_ab(run):
    pair = PreferencePair(id="p1", conversation_id="conv-a", reply_id="conv-a#r0",
                          window=(2.96, 4.0), context_start=0.0,
                          chosen=ReplyVariant(words=timed("paris", 3.0), audio="p/chosen.wav"),
                          rejected=ReplyVariant(words=timed("i do not know", 3.0),
                                                audio="p/rejected.wav"),
                          issue_ids=["a-fact"], strategy="rewrite", category="content")
    write_manifest(run / PAIRS, [pair])
    c = client(run)
    page = c.get("/conversation", params={"id": "conv-a"}).text
    first = "chosen" if 'data-shown-first="chosen"' in page else "rejected"
    assert f'data-shown-first="{first}"' in page
    r = post(c, target="pair", target_id="p1", verdict="prefer_rejected", shown_first=first)
    assert r.status_code == 200
    assert ("prefer A" if first == "rejected" else "prefer B") in \
        c.get("/conversation", params={"id": "conv-a"}).text


def test_only_files_inside_the_run_are_served(run, tmp_path):
    c = client(run)
    ok = c.get("/media", params={"path": "audio/conv-a/model.wav"})
    assert ok.status_code == 200 and ok.content[:4] == b"RIFF"
    part = c.get("/media", params={"path": "audio/conv-a/model.wav"},
                 headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10  # seekable
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF secret")
    os.symlink(outside, run / "audio" / "link.wav")
    for path in ("../secret.wav", str(outside), "audio/../../secret.wav", "audio/link.wav",
                 "conversations.jsonl.gz", "/etc/passwd", "audio/missing.wav"):
        r = c.get("/media", params={"path": path})
        assert r.status_code == 404, path
        assert b"secret" not in r.content


def test_unknown_hosts_are_refused(run):
    c = client(run)
    assert c.get("/", headers={"Host": "evil.example:8765"}).status_code == 421
    assert c.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_writes_need_the_same_origin(run):
    c = client(run)
    body = {"target": "issue", "target_id": "a-fact", "verdict": "reject"}
    assert c.post("/api/decisions", json=body).status_code == 403  # no Origin
    assert c.post("/api/decisions", json=body,
                  headers={"Origin": "http://evil.example"}).status_code == 403
    assert not DecisionLog(run).path.exists()


def test_a_token_guards_every_request_beyond_loopback(run):
    app = create_app(run, reviewer="ann", host="10.1.2.3", port=9000, token="s3cret")
    c = TestClient(app, base_url="http://10.1.2.3:9000")
    assert c.get("/").status_code == 401
    assert c.get("/media", params={"path": "audio/conv-a/model.wav"}).status_code == 401
    assert c.get("/?token=wrong").status_code == 401
    assert c.get("/?token=sécret").status_code == 401  # any text is a wrong token, not a crash
    assert c.get("/?token=s3cret").status_code == 200  # sets the cookie ...
    assert c.get("/conversation", params={"id": "conv-a"}).status_code == 200  # ... used here
    body = {"target": "issue", "target_id": "a-fact", "verdict": "confirm"}
    assert c.post("/api/decisions", json=body,
                  headers={"Origin": "http://evil.example"}).status_code == 403
    fresh = TestClient(app, base_url="http://10.1.2.3:9000")
    assert fresh.post("/api/decisions", json=body).status_code == 401
    assert fresh.post("/api/decisions", json=body,
                      headers={"X-Review-Token": "s3cret"}).status_code == 200


def test_transcripts_are_escaped(run):
    page = client(run).get("/conversation", params={"id": "conv-a"})
    html = page.text
    assert XSS_WORD not in html and XSS_REASON not in html
    assert "&lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;" in html
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in html
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_index_follows_the_manifests(run):
    idx = RunIndex(run)
    assert [i.id for i in idx.issues("conv-a")] == ["a-fact", "a-tone"]
    idx.close()
    from duplexalign.manifest import read_manifest
    from duplexalign.records import Issue
    from duplexalign.runs import ANNOTATIONS

    keep = [i for i in read_manifest(run / ANNOTATIONS, Issue) if i.id != "a-tone"]
    write_manifest(run / ANNOTATIONS, keep)
    assert [i.id for i in RunIndex(run).issues("conv-a")] == ["a-fact"]


def test_a_second_reviewer_side_by_side(run):
    ann, bob = client(run, reviewer="ann"), client(run, reviewer="bob")
    ann.get("/conversation", params={"id": "conv-a"})  # ann's app has read the (empty) log
    assert post(bob, target="issue", target_id="a-tone", verdict="reject").status_code == 200
    page = ann.get("/conversation", params={"id": "conv-a"}).text  # sees bob's new decision
    assert "others: bob=reject" in page
    assert page.count("undecided") >= 2  # still undecided by ann herself


def test_overlapping_issue_spans_stack_in_rows():
    from duplexalign.review.app import stack_rows

    # a and b overlap (row 0, 1); c starts after a ended (row 0); d overlaps c and b's end
    assert stack_rows([(1.0, 3.0), (2.0, 5.0), (3.0, 4.0), (3.5, 6.0)]) == [0, 1, 0, 2]
    assert stack_rows([]) == []
