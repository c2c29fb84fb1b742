"""The rewriter's endpoint: `pairs.rewriter`, else annotate's endpoint, else the local server; it is
connected only when a pair needs it."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
from judgefakes import FakeOpenAI  # noqa: E402

from duplexalign.annotate.stage import AnnotateConfig  # noqa: E402
from duplexalign.errors import BadInput  # noqa: E402
from duplexalign.judges.endpoint import LLMEndpoint  # noqa: E402
from duplexalign.pairs.config import PairsConfig  # noqa: E402
from duplexalign.pairs.stage import LazyRewriter, rewriter_endpoint  # noqa: E402
from duplexalign.runs import RunDir  # noqa: E402


def test_default_rewriter_is_annotates_endpoint(tmp_path):
    rd = RunDir(tmp_path, create=True)
    assert rewriter_endpoint(PairsConfig(), rd) == LLMEndpoint()  # no annotate yet: local server
    rd.write_provenance("annotate", AnnotateConfig(llm={"url": "http://judge:8000/v1",
                                                        "model": "big", "threshold": 3}))
    ep = rewriter_endpoint(PairsConfig(), rd)
    assert (ep.url, ep.model) == ("http://judge:8000/v1", "big")
    own = PairsConfig(rewriter={"url": "http://writer:9000/v1", "model": "w"})
    assert rewriter_endpoint(own, rd).url == "http://writer:9000/v1"


def test_lazy_rewriter_connects_on_first_use_and_writes_the_missing_reply(tmp_path):
    with FakeOpenAI(lambda payload: {"reply": "the capital of france is paris"}) as srv:
        with ExitStack() as stack:
            rw = LazyRewriter(LLMEndpoint(url=srv.url, model="fake"), stack, tmp_path)
            assert srv.count == 0  # nothing asked before a pair needs it
            text = rw.write_reply([("user", "what is the capital of france")])
    assert text == "the capital of france is paris" and srv.count == 1


def test_missing_local_server_drops_pairs_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("DUPLEXALIGN_CACHE", str(tmp_path / "empty"))
    with ExitStack() as stack:
        rw = LazyRewriter(LLMEndpoint(), stack, tmp_path)
        for _ in range(2):  # the failure is remembered: one warning, no second start
            try:
                rw.write_reply([("user", "hello")])
            except BadInput as e:
                assert e.reason == "rewriter_unavailable" and "setup_llm" in e.detail
            else:
                raise AssertionError("expected BadInput")
