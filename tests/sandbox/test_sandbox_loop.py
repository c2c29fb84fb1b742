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
