"""The GRPO loop on the real tiny moshi model: it trains, validates, stops early and resumes
exactly; the environment is a handful of random user streams with hand-made user words."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import timed
from safetensors.torch import load_file

from duplexalign.evaluate.rollout import UserItem
from duplexalign.train.environment import Environment
from duplexalign.train.grpo import fit, stack_rollouts, step_items
from duplexalign.train.stage import TrainConfig

SENTENCES = ["what is the capital of france", "paris is the capital of france",
             "i am sorry i cannot help with that", "yes okay right i see",
             "hello how are you today", "the answer is four"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from duplexalign.streams.tokenizer import fit_tokenizer, load_tokenizer

    tok = load_tokenizer(fit_tokenizer(SENTENCES * 5, tmp_path_factory.mktemp("tok") / "t.model",
                                       vocab_size=64))
    g = np.random.default_rng(0)
    items = [UserItem(id=f"u{i}", user_codes=g.integers(0, 64, size=(4, 25)),
                      user_words=timed("what is the capital", 0.0)) for i in range(3)]
    return Environment(name="test", items=items, tokenizer=tok)


def cfg(**kw) -> TrainConfig:
    grpo = {"group_size": 4, "prompts": 2, "rollout_batch": 8,
            "rewards": {"weights": {"unresponsiveness": 1.0, "latency": 1.0, "repetition": 1.0,
                                    "interruption": 1.0}},
            **kw.pop("grpo", {})}
    base = {"method": "grpo", "model": "tiny", "lr": 1e-2, "max_steps": 2, "micro_batch_size": 3,
            "checkpoint_every": 1, "seed": 0, "grpo": grpo}
    return TrainConfig(**{**base, **kw})


def weights(d) -> dict[str, torch.Tensor]:
    return load_file(str(d / "final" / "model.safetensors"))


@pytest.mark.parametrize("credit,per_turn", [("token", False), ("decision", False),
                                             ("mixed", False), ("decision+word", True)])
def test_grpo_trains_the_text_side_and_logs_every_term(env, tmp_path, credit, per_turn):
    from duplexalign.models.presets import build_model

    torch.manual_seed(0)
    start = {k: v.clone() for k, v in build_model("tiny").state_dict().items()}
    # the last case also weighs the decision row 3x the word row
    extra = {"per_turn": True, "decision_weight": 3.0} if per_turn else {}
    stats = fit(cfg(grpo={"credit": credit, **extra}), env, tmp_path)
    assert stats.counts["steps"] == 2
    after = weights(tmp_path)
    changed = {k for k in after if not torch.equal(after[k], start[k])}
    assert any(k.startswith("transformer") for k in changed)
    assert not any(k.startswith("depformer") for k in changed)  # text stream only
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for key in ("reward/total", "reward/interruption", "reward/unresponsiveness",
                "reward/pause_takeover", "reward/no_yield", "reward/latency", "reward/repetition", "kl",
                "check/repetition_rate", "check/silence_rate", "check/reply_length"):
        assert key in rows[0], key
    assert "reward/content" not in rows[0]  # no judge


def test_resume_repeats_the_same_rollouts_and_weights(env, tmp_path):
    fit(cfg(max_steps=3), env, tmp_path / "a")
    straight = weights(tmp_path / "a")
    # a crash after step 2: the step-3 checkpoint and the final model never got written
    fit(cfg(max_steps=3), env, tmp_path / "b")
    ckpt = tmp_path / "b" / "ckpt"
    shutil.rmtree(ckpt / "step-0000003")
    shutil.rmtree(tmp_path / "b" / "final")
    (ckpt / "latest").write_text("step-0000002\n")
    fit(cfg(max_steps=3), env, tmp_path / "b")
    resumed = weights(tmp_path / "b")
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=0)


def test_validation_keeps_the_best_and_stops_early(env, tmp_path):
    scores = iter([0.5, 0.4, 0.3, 0.2])
    calls = []

    def validator(model, step):
        calls.append(step)
        return {"sandbox/score": next(scores)}

    c = cfg(max_steps=4, val={"every": 1, "patience": 2, "metric": {"sandbox/score": 1.0}})
    stats = fit(c, env, tmp_path, validators=[validator])
    assert calls == [1, 2, 3]  # two validations without improvement after step 1
    assert stats.values["stopped_early"] is True
    assert json.loads((tmp_path / "best" / "step.json").read_text())["step"] == 1


def flag_every_reply(payload):
    """A judge (for judgefakes' server) that flags the tone of every reply it is asked about."""
    from judgefakes import schema_ids

    scores = dict.fromkeys(("helpfulness", "safety", "factuality", "instruction_adherence",
                            "tone"), 5)
    return {"replies": [{"id": i, "problems": ["tone"], "scores": {**scores, "tone": 1},
                         "reason": "rude", "improved_reply": "Sorry."}
                        for i in schema_ids(payload)]}


def test_llm_judge_content_and_its_calls_are_logged_per_step_and_cached(env, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
    from judgefakes import FakeOpenAI

    all_terms = {"interruption": 1.0, "unresponsiveness": 1.0, "latency": 1.0,
                 "repetition": 1.0, "content": 1.0}
    with FakeOpenAI(flag_every_reply) as srv:
        c = cfg(max_steps=1, grpo={"judge": "llm", "llm": {"url": srv.url, "model": "fake"},
                                   "rewards": {"weights": all_terms}})
        fit(c, env, tmp_path / "a", judge_cache=tmp_path / "cache")
        asked = srv.count
        fit(c, env, tmp_path / "b", judge_cache=tmp_path / "cache")  # same seed: same rollouts
    a, b = (json.loads((tmp_path / d / "metrics.jsonl").read_text()) for d in ("a", "b"))
    assert a["judge/replies"] > 0 and a["judge/flagged"] == a["judge/replies"]
    assert a["judge/requests"] == asked and a["judge/cached"] == 0
    assert a["judge/failed_calls"] == 0 and a["judge/groups_without_content"] == 0
    assert a["reward/content"] < 0  # every reply flagged: -replies / user turns per rollout
    assert b["judge/cached"] == asked and b["judge/requests"] == 0 and srv.count == asked
    assert b["reward/content"] == a["reward/content"] and b["loss"] == a["loss"]


def test_step_items_cover_every_stream_each_epoch():
    items = list("abcde")
    seen = [x for s in range(5) for x in step_items(items, 2, s, seed=1)]  # 10 = 2 epochs
    assert sorted(seen[:5]) == items and sorted(seen[5:]) == items
    assert step_items(items, 2, 3, seed=1) == step_items(items, 2, 3, seed=1)


def test_stack_rollouts_pads_with_the_last_frame_and_masks_it(env):
    class R:
        def __init__(self, t):
            self.text_tokens = np.arange(t)

        def codes(self):
            return torch.arange(3 * len(self.text_tokens)).view(3, -1)

    codes, mask = stack_rollouts([R(2), R(3)])
    assert codes.shape == (2, 3, 3)
    assert codes[0, 0].tolist() == [0, 1, 1]  # frame 1 repeated
    assert mask.tolist() == [[True, True, False], [True, True, True]]


def test_kl_is_to_the_starting_model_unless_reference_init_names_another(env, tmp_path):
    from duplexalign.models.presets import build_model, save_model

    m = build_model("tiny")  # the weights fit builds, then moved
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    other = tmp_path / "other"
    save_model(m, other)
    fit(cfg(max_steps=1), env, tmp_path / "a")
    fit(cfg(max_steps=1, reference_init=other), env, tmp_path / "b")
    kl = [json.loads((tmp_path / d / "metrics.jsonl").read_text())["kl"] for d in ("a", "b")]
    assert kl[0] == 0.0  # step 1 scores the starting model against itself
    assert kl[1] > 1e-3


def test_grpo_lr_and_max_steps_override_the_trainers(env, tmp_path):
    stats = fit(cfg(max_steps=3, lr=1e-2, grpo={"max_steps": 2, "lr": 1e-3}), env, tmp_path)
    assert stats.counts["steps"] == 2
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # after step 1 of 2 the cosine is halfway: 1e-3 * 0.5 (the trainer's would be 1e-2 * 0.75)
    assert len(rows) == 2 and rows[0]["lr"] == pytest.approx(5e-4)


def test_grpo_seed_overrides_the_trainers(env, tmp_path):
    def rewards(run_cfg, out):
        fit(run_cfg, env, tmp_path / out)
        return [json.loads(x)["reward/total"]
                for x in (tmp_path / out / "metrics.jsonl").read_text().splitlines()]

    base = rewards(cfg(max_steps=1, seed=0), "a")
    assert rewards(cfg(max_steps=1, seed=5, grpo={"seed": 0}), "b") == base  # grpo.seed wins
    assert rewards(cfg(max_steps=1, seed=0, grpo={"seed": 5}), "c") != base
