"""On-policy rounds: each round starts from the previous round's checkpoint on fresh conversations."""

from __future__ import annotations

from pathlib import Path

from duplexalign.sandbox import loop
from duplexalign.sandbox.demo import DemoConfig
from duplexalign.sandbox.deploy import DeployConfig


def test_rounds_chain_policies_and_keep_the_base_length(monkeypatch, tmp_path):
    calls = []

    def fake_round(cfg, r, policy, base, assets, stages, out, base_length, progress):
        calls.append((r, policy, base, base_length))
        return loop.RoundResult(round=r, run_dir=loop.round_dir(out, r) / "run", start=policy,
                                checkpoint=Path(f"ckpt{r}"), base_length=4.0 + r)

    class FakeAssets:
        instruct = Path("instruct")

    monkeypatch.setattr(loop, "align_round", fake_round)
    seen = []
    res = loop.on_policy_rounds(DemoConfig(rounds=3), FakeAssets(), {}, tmp_path,
                                on_round=lambda r: seen.append(r.round))
    assert [c[1] for c in calls] == [Path("instruct"), Path("ckpt1"), Path("ckpt2")]
    assert all(c[2] == Path("instruct") for c in calls)  # the base stays the base
    assert [c[3] for c in calls] == [None, 5.0, 5.0]     # round 1's reference reply length
    assert seen == [1, 2, 3] and [r.checkpoint for r in res] == [Path(f"ckpt{i}") for i in (1, 2, 3)]
    assert res[0].run_dir == tmp_path / "run" and res[2].run_dir == tmp_path / "round3" / "run"


def test_each_round_deploys_fresh_conversations():
    from duplexalign.sandbox.build import conversation_specs
    from duplexalign.sandbox.scenarios import build_bank
    from duplexalign.sandbox.users import TRAIN_VOICES

    cfg = DeployConfig(conversations=20, seed=1)
    seeds = [loop.round_deploy(cfg, r).seed for r in (1, 2, 3)]
    assert seeds == [1, 1 + loop.ROUND_SEED_STRIDE, 1 + 2 * loop.ROUND_SEED_STRIDE]
    bank = build_bank(0)
    specs = [conversation_specs(bank, "train", TRAIN_VOICES, 20, s, (2, 3)) for s in seeds[:2]]
    assert [s["seed"] for s in specs[0]] != [s["seed"] for s in specs[1]]
    assert all(it.id in {x.id for x in bank.of("train")} for s in specs[1] for it in s["items"])


def test_report_shows_the_held_out_table_after_every_round():
    from duplexalign.records import Word
    from duplexalign.sandbox.demo import render_report
    from duplexalign.sandbox.outcomes import turn_outcomes
    from duplexalign.sandbox.scenarios import build_bank
    from duplexalign.sandbox.table import before_after, goals

    qa = build_bank(0).of("train", "qa")[0]
    meta = {"sandbox": {"turns": [{"item": qa.to_meta(), "start": 0.5, "end": 2.0,
                                   "pause": None, "barge_in": False}]}}
    silent = turn_outcomes(meta, [], 6.0)
    answers = turn_outcomes(meta, [Word(text="it", start=2.4, end=2.6)], 6.0)
    t1, t2 = before_after([silent] * 4, [silent] * 4), before_after([silent] * 4, [answers] * 4)
    rounds = [{"round": i, "table": t, "goals": goals(t), "checkpoint": f"c{i}",
               "validation_history": [{"step": 2, "sandbox/unresponsiveness": 0.5}]}
              for i, t in ((1, t1), (2, t2))]
    ag = {"replies": 0, "problematic_agreement": None, "per_category": {}}
    res = {"table": t2, "goals": goals(t2), "flaw_rates": {"temperature_1": {}, "deployment": {}},
           "judge": "oracle", "judge_agreement": ag, "pairs": "mixed", "loss": "dpo_ln",
           "reference": "policy", "floor_anchor_weight": 1.0, "checkpoint": "c2",
           "validation_history": rounds[1]["validation_history"], "rounds": rounds,
           "complete": False, "seconds": 1.0}
    md = render_report(res)
    assert "### Round 1" in md and "### Round 2" in md and "after round 2" in md
    assert "Partial: 2 round(s)" in md
    assert "| unresponsiveness rate (%) | 100.0 [100.0, 100.0] | 0.0 [0.0, 0.0]" in md
    assert "Rollout validation during training in round 2" in md
