"""GRPO's content reward from the annotate stage's LLM judge, against a fake OpenAI-compatible
server on 127.0.0.1 (`tests/judges/judgefakes.py`: it flags factuality in a reply containing
"wrong"; here a reply containing "broken" gets an answer that breaks the schema, a failed call).

The timelines (default timing thresholds, as in test_grpo_rewards.py): the user asks twice, turn 1
"what is two plus two" [0, 1.45] and turn 2 "and what is three plus three" [4.0, 5.75], so
n_turns = 2; the model answers turn 1 at 1.95 and turn 2 at 6.25 (0.5 s after each turn's end:
latency -0.5/3, no timing issue). Only the second reply's words differ between rollouts.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from factories import timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
from judgefakes import FakeOpenAI, judge_responder  # noqa: E402

from duplexalign.annotate.stage import AnnotateConfig  # noqa: E402
from duplexalign.config import apply_overrides, build  # noqa: E402
from duplexalign.errors import ConfigError  # noqa: E402
from duplexalign.judges.content import ContentJudge, LLMJudgeConfig  # noqa: E402
from duplexalign.runs import RunDir  # noqa: E402
from duplexalign.train.environment import content_judge, score_rollouts  # noqa: E402
from duplexalign.train.grpo import _digested, judge_metrics, resolve_judge  # noqa: E402
from duplexalign.train.rewards import RewardConfig, group_totals  # noqa: E402
from duplexalign.train.stage import TrainConfig  # noqa: E402

USER = timed("what is two plus two", 0.0) + timed("and what is three plus three", 4.0)
REWARDS = RewardConfig()
WEIGHTS = REWARDS.weights  # the defaults: content 1.0


def responder(payload):
    """judgefakes' judge, except that a transcript with "broken" gets an empty answer (the
    schema asks for one verdict per reply: a parse failure, a failed call without retries)."""
    if "broken" in payload["messages"][-1]["content"]:
        return {"replies": []}
    return judge_responder(payload)


def rollout(rid: str, second_reply: str):
    """A rollout as `score_rollouts` reads it (`evaluate.rollout.Rollout`'s fields)."""
    words = timed("four", 1.95) + timed(second_reply, 6.25)
    item = SimpleNamespace(user_words=USER, meta={})
    return SimpleNamespace(id=rid, model_words=words, item=item, duration=12.0,
                           text_tokens=np.array([3, 3, 10, 3]))


@pytest.fixture
def judge(tmp_path):
    with FakeOpenAI(responder) as srv, ExitStack() as stack:
        llm = LLMJudgeConfig(url=srv.url, model="fake", max_retries=0)
        j = content_judge("llm", llm, stack, tmp_path / "cache")
        j.server = srv
        yield j


def test_the_llm_judge_is_annotates_judge_with_its_client_and_cache(judge, tmp_path):
    assert isinstance(judge, ContentJudge) and judge.cfg.template == "judge_v1"
    assert judge.client.base_url == judge.server.url and judge.client.concurrency == 8
    assert judge.client.cache.root == tmp_path / "cache"


def test_a_flagged_reply_lowers_that_rollouts_content_by_one_per_user_turn(judge):
    good, bad = score_rollouts([rollout("a", "six"), rollout("b", "wrong seven")], REWARDS, judge)
    # "wrong seven" is flagged (factuality): content = -flagged / n_turns = -1 / 2
    assert good["content"] == 0.0
    assert bad["content"] == pytest.approx(-0.5)
    # every other term is the same: the two rollouts differ only by their content
    assert {k: v for k, v in bad.items() if k != "content" and not k.startswith(("judge/",
                                                                                 "check/"))} == \
        pytest.approx({k: v for k, v in good.items()
                       if k != "content" and not k.startswith(("judge/", "check/"))})
    assert (good["judge/replies"], good["judge/flagged"]) == (2.0, 0.0)
    assert (bad["judge/replies"], bad["judge/flagged"], bad["judge/failed_calls"]) == (2.0, 1.0,
                                                                                        0.0)
    # with weight 1 the total differs by exactly the content term: 1.0 * -0.5
    totals, dropped = group_totals([good, bad], WEIGHTS, group_size=2)
    assert totals[1] - totals[0] == pytest.approx(-0.5) and dropped == 0


def test_a_failed_call_leaves_the_content_of_its_whole_group_out(judge):
    rolls = [rollout("a", "six"), rollout("b", "wrong seven"),   # group 1: judged
             rollout("c", "broken six"), rollout("d", "wrong seven")]  # group 2: c failed
    scored = score_rollouts(rolls, REWARDS, judge)
    assert "content" not in scored[2] and scored[2]["judge/failed_calls"] == 1.0
    assert scored[3]["content"] == pytest.approx(-0.5)  # d itself was judged...
    totals, dropped = group_totals(scored, WEIGHTS, group_size=2)
    assert dropped == 1
    assert "content" not in scored[3]  # ...but its group trains without the content term
    assert scored[1]["content"] == pytest.approx(-0.5)  # group 1 keeps it
    # group 2's totals: the weighted timing and repetition terms only; d's "wrong" reply costs
    # nothing there, so c and d (same timing) tie
    timing = -0.5 / 3.0 * WEIGHTS["latency"]  # latency only: no issue, no repetition
    assert totals == pytest.approx([timing, timing - 0.5, timing, timing])
    calls = judge.client.stats  # one call per rollout (2 replies fit one call), c's failed
    m = judge_metrics(scored, dropped, calls)
    assert m == {"judge/replies": 6.0, "judge/flagged": 2.0, "judge/failed_calls": 1.0,
                 "judge/failed_rollouts": 1.0, "judge/groups_without_content": 1.0,
                 "judge/requests": 4.0, "judge/cached": 0.0}


def test_answers_are_cached_and_failures_are_asked_again(judge):
    rolls = [rollout("a", "six"), rollout("c", "broken six")]
    score_rollouts(rolls, REWARDS, judge)
    before = dict(judge.client.stats)
    scored = score_rollouts(rolls, REWARDS, judge)
    assert judge.client.stats["cache_hits"] - before.get("cache_hits", 0) == 1  # a's answer
    assert judge.client.stats["requests"] - before["requests"] == 1  # c asked again
    assert scored[0]["content"] == 0.0 and "content" not in scored[1]


def test_rollouts_of_a_step_are_judged_concurrently(tmp_path):
    with FakeOpenAI(responder, latency=0.3) as srv, ExitStack() as stack:
        llm = LLMJudgeConfig(url=srv.url, model="fake", concurrency=4)
        judge = content_judge("llm", llm, stack, None)
        score_rollouts([rollout(f"r{i}", "six") for i in range(8)], REWARDS, judge)
    assert srv.count == 8 and srv.max_active == 4  # bounded by llm.concurrency


# ---- config ----

def train_cfg(**grpo) -> TrainConfig:
    return build(TrainConfig, {"method": "grpo", "grpo": grpo}, prefix="train")


def test_judge_llm_validates_and_a_dotted_url_makes_its_endpoint():
    assert train_cfg(judge="llm").grpo.llm is None  # resolved at run time
    data = apply_overrides({}, ["method=grpo", "grpo.judge=llm",
                                "grpo.llm.url=http://judge:8000/v1", "grpo.llm.model=big"],
                           TrainConfig)
    cfg = build(TrainConfig, data, prefix="train")
    assert (cfg.grpo.llm.url, cfg.grpo.llm.model) == ("http://judge:8000/v1", "big")


@pytest.mark.parametrize("grpo, says", [
    ({"judge": "oracle", "llm": {"url": "http://judge:8000/v1"}},
     "train.grpo.llm is only read by train.grpo.judge=llm (judge is oracle)"),
    ({"judge": "none"}, "train.grpo.judge=none gives no content reward"),
    ({"judge": "llm", "llm": {"url": "judge:8000"}}, "train.grpo.llm.url"),
])
def test_bad_judge_combinations_give_one_line(grpo, says):
    with pytest.raises(ConfigError) as e:
        train_cfg(**grpo)
    assert len(e.value.problems) == 1 and says in e.value.problems[0]
    assert "\n" not in e.value.problems[0]


def test_unset_llm_is_the_endpoint_annotate_judged_with(tmp_path):
    rd = RunDir(tmp_path, create=True)
    cfg = train_cfg(judge="llm")
    assert resolve_judge(cfg, tmp_path).grpo.llm == LLMJudgeConfig()  # not annotated: defaults
    rd.write_provenance("annotate", AnnotateConfig(llm={
        "url": "http://judge:8000/v1", "model": "big", "template": "judge_lean_v1",
        "concurrency": 32}))
    llm = resolve_judge(cfg, tmp_path).grpo.llm
    assert (llm.url, llm.model, llm.template, llm.concurrency) == (
        "http://judge:8000/v1", "big", "judge_lean_v1", 32)
    own = train_cfg(judge="llm", llm={"url": "http://other:1/v1"})
    assert resolve_judge(own, tmp_path).grpo.llm.url == "http://other:1/v1"
    assert resolve_judge(train_cfg(judge="oracle"), tmp_path).grpo.llm is None


def test_unknown_judge_is_named_with_a_suggestion(tmp_path):
    RunDir(tmp_path, create=True)
    with pytest.raises(ConfigError, match="llm"):
        resolve_judge(train_cfg(judge="lm"), tmp_path)


def test_how_the_judge_is_reached_does_not_enter_the_digest():
    a = train_cfg(judge="llm", llm={"url": "http://j:1/v1", "concurrency": 2, "timeout": 10})
    b = train_cfg(judge="llm", llm={"url": "http://j:1/v1", "concurrency": 64})
    c = train_cfg(judge="llm", llm={"url": "http://j:1/v1", "threshold": 3})
    assert _digested(a) == _digested(b) != _digested(c)
    assert json.dumps(_digested(a))  # plain JSON
