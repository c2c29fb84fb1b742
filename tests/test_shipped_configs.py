"""Every preset shipped in configs/ loads: each stage section validates, the sandbox ones give the
demo its world, and `duplexalign train RUN --config P` reads the same `train:` section the demo
trains with (it used to read defaults while the values sat under `sandbox.stages.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from duplexalign import pipeline
from duplexalign.cli.common import load_stage_config
from duplexalign.config import load_section, load_yaml
from duplexalign.errors import ConfigError
from duplexalign.sandbox.build import ASSETS_DIR
from duplexalign.sandbox.demo import ablate, demo_config, load_demo, pairs_kind, preference_loss
from duplexalign.train.stage import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs():
    assert {p.name for p in CONFIGS} >= {"sandbox.yaml", "sandbox_quick.yaml", "moshi_7b.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_section_of_a_shipped_config_loads(path):
    data = load_yaml(path)
    cfgs = pipeline.load_configs(path, (), pipeline.STAGES)
    assert set(cfgs) == set(pipeline.STAGES)
    for stage in set(data) & set(pipeline.STAGES):  # the file's values arrive in the configs
        for key, value in data[stage].items():
            if not isinstance(value, dict):
                got = getattr(cfgs[stage], key)
                assert (str(got) if isinstance(got, Path) else got) == value, f"{stage}.{key}"
    if "sandbox" in data:
        cfg = demo_config(path, [])
        assert set(data["sandbox"]) <= set(type(cfg).model_fields)


def test_the_train_command_reads_the_sandbox_train_section():
    path = next(p for p in CONFIGS if p.name == "sandbox.yaml")
    cfg = load_section(TrainConfig, "train", path)
    assert cfg.lr == 5.0e-5 and cfg.max_steps == 40 and cfg.val.every == 4
    assert cfg.floor_anchor_weight == 0.1
    # `duplexalign train RUN --config configs/sandbox.yaml` also starts from the sandbox's model
    args = argparse.Namespace(config=str(path), overrides=["train.loss_params.beta=0.3"])
    cfg = load_stage_config(TrainConfig, "train", args)
    assert cfg.init == ASSETS_DIR / "instruct" and cfg.loss_params.beta == 0.3 and cfg.lr == 5e-5


def test_demo_overrides_reach_the_stages_and_flags_are_shortcuts():
    path = next(p for p in CONFIGS if p.name == "sandbox_quick.yaml")
    cfg, stages = load_demo(path, ["train.lr=2e-5", "sandbox.deploy.conversations=8",
                                   "annotate.judge=llm"])
    assert stages["train"].lr == 2e-5 and cfg.deploy.conversations == 8
    assert stages["annotate"].judge == "llm"
    assert stages["train"].loss == {"dpo_ln": 1.0, "sft": 1.0}
    assert stages["streams"].tokenizer and stages["train"].init is not None  # the assets
    assert pairs_kind(stages) == "mixed" and preference_loss(stages) == "dpo_ln"
    ablate(stages, pairs="timing", loss="simpo")
    assert stages["train"].loss == {"simpo": 1.0, "sft": 1.0}
    assert set(stages["pairs"].strategy_for) == {"interruption", "pause_takeover",
                                                 "unresponsiveness"}
    assert pairs_kind(stages) == "timing" and preference_loss(stages) == "simpo"


def test_demo_overrides_that_nothing_reads_are_errors():
    path = next(p for p in CONFIGS if p.name == "sandbox_quick.yaml")
    with pytest.raises(ConfigError, match="sandbox.stages"):
        load_demo(path, ["sandbox.stages.train.lr=1e-5"])
    with pytest.raises(ConfigError, match="evaluate.limit: not read"):
        load_demo(path, ["evaluate.limit=2"])


def test_by_judge_overrides_follow_the_judge_unless_an_override_names_the_key():
    path = next(p for p in CONFIGS if p.name == "sandbox_quick.yaml")
    by_judge = ("sandbox.by_judge={oracle: [train.method=grpo], "
                "llm: [train.method=dpo, sandbox.deploy.conversations=7]}")
    cfg, stages = load_demo(path, [by_judge, "annotate.judge=oracle"])
    assert stages["train"].method == "grpo" and cfg.deploy.conversations == 32  # the preset's
    cfg, stages = load_demo(path, [by_judge, "annotate.judge=llm"])
    assert stages["train"].method == "dpo" and cfg.deploy.conversations == 7
    _, stages = load_demo(path, [by_judge, "annotate.judge=oracle", "train.method=dpo"])
    assert stages["train"].method == "dpo"  # --method dpo wins
    cfg, _ = load_demo(path, [by_judge, "annotate.judge=llm", "sandbox.deploy.conversations=9"])
    assert cfg.deploy.conversations == 9
    with pytest.raises(ConfigError, match="would change the judge"):
        load_demo(path, ["sandbox.by_judge={llm: [annotate.judge=oracle]}", "annotate.judge=llm"])


def test_the_default_preset_trains_online_with_the_oracle_and_offline_with_the_llm_judge():
    path = next(p for p in CONFIGS if p.name == "sandbox.yaml")
    cfg, stages = load_demo(path, ["annotate.judge=oracle"])
    assert (stages["train"].method, cfg.deploy.conversations) == ("grpo", 128)
    cfg, stages = load_demo(path, [])
    assert stages["annotate"].judge == "llm"
    assert (stages["train"].method, cfg.deploy.conversations) == ("dpo", 80)
