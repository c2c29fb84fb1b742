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


def test_pairs_without_a_rewriter_setting_insert_replies_through_annotates_endpoint(tmp_path):
    """`duplexalign pairs RUN` with no `pairs.rewriter`: the silence gets a reply written by the
    endpoint annotate judged with, instead of being dropped as `no_improved_reply`."""
    from pairfakes import FakeVoice, conversation, issue, model_audio

    from duplexalign.manifest import iter_dicts, write_manifest
    from duplexalign.pairs.stage import run
    from duplexalign.speech.audio import write_audio

    conv = conversation()
    write_manifest(tmp_path / "conversations.jsonl.gz", [conv])
    write_manifest(tmp_path / "annotations.jsonl.gz",
                   [issue("timing", "unresponsiveness", (9.85, 14.0))])
    write_audio(tmp_path / "model.wav", model_audio(conv))
    rd = RunDir(tmp_path)
    rd.mark_done("ingest")
    rd.mark_done("annotate")
    with FakeOpenAI(lambda payload: {"reply": "yes i am still here"}) as srv:
        rd.write_provenance("annotate", AnnotateConfig(llm={"url": srv.url, "model": "fake"}))
        stats = run(PairsConfig(), tmp_path, voice=lambda name: FakeVoice())
    [pair] = list(iter_dicts(tmp_path / "pairs.jsonl.gz"))
    assert pair["category"] == "silence" and pair["strategy"] == "insert"
    assert " ".join(w["text"] for w in pair["chosen"]["words"]) == "yes i am still here"
    assert pair["reply_id"] == "conv/1#silence9850" and stats.counts["written"] == 1
    assert (tmp_path / "judge_cache").is_dir()  # answers cached like annotate's
