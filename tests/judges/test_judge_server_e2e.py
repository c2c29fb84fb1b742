"""End to end against the REAL local llama-server (built by scripts/setup_llm.sh).

SmolLM2-135M checks the plumbing (server start/stop by PID, json_schema decoding, verdict parsing,
the annotate stage, a resume after the server is killed); one Qwen2.5-Coder-1.5B case checks that the
default judge flags an unsafe reply. In CI (CI=true) a missing server or model FAILS; elsewhere the
tests fail too unless DUPLEXALIGN_SKIP_LLM=1 opts out explicitly.
"""

from __future__ import annotations

import os

import pytest

from duplexalign.annotate.stage import AnnotateConfig, run
from duplexalign.judges.cases import load_cases, to_conversation
from duplexalign.judges.content import ContentJudge, LLMJudgeConfig
from duplexalign.judges.llm import LLMClient, LLMRequest
from duplexalign.judges.rewriter import Rewriter, RewriteRejected
from duplexalign.judges.server import LocalLLMServer, model_path, server_binary
from duplexalign.manifest import iter_dicts, write_manifest
from duplexalign.runs import RunDir

pytestmark = pytest.mark.llm


def need(model: str) -> None:
    missing = [str(p) for p in (server_binary(), model_path(model)) if not p.exists()]
    if not missing:
        return
    msg = f"local LLM missing ({', '.join(missing)}); run: bash scripts/setup_llm.sh"
    if os.environ.get("CI", "").lower() != "true" and os.environ.get("DUPLEXALIGN_SKIP_LLM") == "1":
        pytest.skip(msg + " (skipped: DUPLEXALIGN_SKIP_LLM=1)")
    pytest.fail(msg)


@pytest.fixture(scope="module")
def smol():
    need("smollm2")
    with LocalLLMServer("smollm2") as srv:
        yield srv
    assert srv.proc is None


def cases(*ids):
    by = {c.id: c for c in load_cases()}
    return [to_conversation(i, by[i].turns) for i in ids]


def test_smollm2_judge_returns_schema_valid_verdicts(smol, tmp_path):
    client = LLMClient(smol.base_url, smol.model_name, cache_dir=tmp_path, timeout=120)
    judge = ContentJudge(client, LLMJudgeConfig())
    [conv] = cases("instr-07")  # two replies
    out = client.run_many([c.request for c in judge.chunks(conv)])
    assert not any(hasattr(r, "kind") for r in out), out
    assert client.dialect == "json_schema"
    import asyncio

    res = asyncio.run(judge.judge(conv))
    assert not res.failures and [v.index for v in res.verdicts] == [1, 2]
    for v in res.verdicts:
        assert set(v.scores) == {"helpfulness", "safety", "factuality", "instruction_adherence",
                                 "tone"} and all(1 <= s <= 5 for s in v.scores.values())
    assert client.stats["cache_hits"] >= 1  # the judge() call reused the cached answer


def test_smollm2_rewriter_writes_a_reply(smol):
    rw = Rewriter(LLMClient(smol.base_url, smol.model_name, timeout=120))
    try:
        text = rw.rewrite([("user", "what is the capital of australia")], ["factuality"],
                          "It's Sydney.")
    except RewriteRejected as e:  # a 135M model may keep the wrong answer: refused, not returned
        assert e.reason == "near_identical"
    else:
        assert text.strip() and text != "It's Sydney."


def test_annotate_survives_a_killed_server_and_resumes(tmp_path):
    need("smollm2")
    convs = cases("fact-01", "ok-04")
    write_manifest(tmp_path / "conversations.jsonl.gz", convs)
    RunDir(tmp_path).mark_done("ingest")
    cfg = dict(progress=False)
    with LocalLLMServer("smollm2") as srv:
        srv.proc.kill()  # dies before the run: every call fails, nothing is lost
        srv.proc.wait()
        s1 = run(AnnotateConfig(llm={"url": srv.base_url, "model": srv.model_name,
                                     "max_retries": 0, "timeout": 5}, **cfg), tmp_path)
    assert s1.counts["conversations/failed"] == 2
    assert not (tmp_path / ".done" / "annotate").exists()
    # resume with the default: the stage starts its own local server (here SmolLM2), then stops it
    s2 = run(AnnotateConfig(llm={"model": "smollm2", "timeout": 120},
                            **cfg), tmp_path)
    assert s2.counts["conversations/annotated"] == 2 and "judge_failures/connect" not in s2.counts
    assert (tmp_path / ".done" / "annotate").exists()
    assert {d["id"] for d in iter_dicts(tmp_path / "annotate_progress.jsonl.gz")} == {
        c.id for c in convs}


def test_qwen_default_judge_flags_unsafe_compliance(tmp_path):
    """Model-quality smoke (pinned build, model, prompt, -t 1): reference/llm.md found the weapon
    case flagged as a safety problem in every configuration of the 1.5B model."""
    need("qwen")
    import asyncio

    with LocalLLMServer("qwen") as srv:
        judge = ContentJudge(LLMClient(srv.base_url, srv.model_name, timeout=600), LLMJudgeConfig())
        [conv] = cases("safety-01")
        out = asyncio.run(judge.judge(conv))
    assert not out.failures
    [v] = out.verdicts
    assert "safety" in v.flagged, v
    assert any(i.category == "safety" and i.judge.model == "qwen" for i in out.issues)


def test_one_grpo_step_of_the_sandbox_model_judged_by_the_real_server(smol, tmp_path):
    """GRPO's content reward from the real local judge: one step of the sandbox's instruct model
    against two simulated users (group of 2), the judge called on every rollout's replies."""
    import json

    from duplexalign.sandbox.build import ASSETS_DIR
    from duplexalign.sandbox.deploy import Assets, DeployConfig
    from duplexalign.sandbox.environment import simulated_users
    from duplexalign.train.grpo import fit
    from duplexalign.train.stage import TrainConfig

    assets = Assets.load(ASSETS_DIR)
    env = simulated_users(DeployConfig(split="train", voices="train", conversations=1, seed=1),
                          assets, progress=False)
    cfg = TrainConfig(method="grpo", init=assets.instruct, max_steps=1, checkpoint_every=1,
                      micro_batch_size=2, grpo={
                          "group_size": 2, "prompts": 1, "judge": "llm",
                          "llm": {"url": smol.base_url, "model": smol.model_name,
                                  "timeout": 120}})
    stats = fit(cfg, env, tmp_path)
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert stats.counts["steps"] == 1 and stats.values["llm"]["requests"] >= 1
    assert row["judge/failed_calls"] == 0 and row["judge/replies"] >= 1
    assert row["judge/requests"] == stats.values["llm"]["requests"]
    assert "reward/content" in row and row["judge/groups_without_content"] == 0


def test_slots_start_a_server_that_decodes_that_many_requests_together():
    need("smollm2")
    import httpx

    with LocalLLMServer("smollm2", ctx=2048, slots=2) as srv:
        props = httpx.get(f"http://127.0.0.1:{srv.port}/props", timeout=10).json()
        assert props["total_slots"] == 2
        assert props["default_generation_settings"]["n_ctx"] == 2048  # each slot: the whole ctx
        client = LLMClient(srv.base_url, srv.model_name, concurrency=2, timeout=120)
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        reqs = [LLMRequest([{"role": "user", "content": f"Answer in JSON: n = {i}."}], schema, 16)
                for i in (1, 2)]
        out = client.run_many(reqs)
        assert all(isinstance(r.data["n"], int) for r in out), out
