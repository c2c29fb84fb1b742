"""`duplexalign demo` flags: `--judge` picks the content judge of annotate and of GRPO's content
reward alike (GRPO then uses annotate's endpoint and options)."""

from __future__ import annotations

import pytest

from duplexalign.cli.demo import REPO_CONFIGS, demo_overrides
from duplexalign.cli.main import build_parser
from duplexalign.sandbox.demo import load_demo


@pytest.mark.parametrize("judge", ["llm", "oracle"])
def test_judge_flag_sets_annotates_and_grpos_judge(judge):
    args = build_parser().parse_args(["demo", "--quick", "--method", "grpo", "--judge", judge])
    _, stages = load_demo(REPO_CONFIGS / "sandbox_quick.yaml", demo_overrides(args))
    assert stages["annotate"].judge == judge
    assert (stages["train"].method, stages["train"].grpo.judge) == ("grpo", judge)
    assert stages["train"].grpo.llm is None  # resolved to annotate.llm when training starts


def test_without_the_flag_the_preset_decides():
    args = build_parser().parse_args(["demo", "--quick", "--method", "grpo"])
    _, stages = load_demo(REPO_CONFIGS / "sandbox_quick.yaml", demo_overrides(args))
    assert stages["train"].grpo.judge == "oracle"  # the sandbox's default GRPO judge
