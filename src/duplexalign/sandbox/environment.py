"""The sandbox's simulated users as an environment of online training (`train.method: grpo`).

Owns turning a deployment's user specs (scenario split, voices, seed, count) into a
`train.environment.Environment`: each simulated user is rendered by TTS with its exact words and
timing and encoded with the sandbox codec (`deploy.user_items`), and carries its scenario ground
truth in its meta, so the `oracle` content judge and the timing rules score the policy's rollouts
against it. Training uses the training split and training voices; validation and test users stay
with `validation.py` and the demo.
"""

from __future__ import annotations

from duplexalign.sandbox.deploy import Assets, DeployConfig, user_items
from duplexalign.train.environment import Environment


def simulated_users(cfg: DeployConfig, assets: Assets, progress: bool = True) -> Environment:
    """The users of `cfg` (rendered and encoded here) with the sandbox's tokenizer.

    Raises:
        ValueError: `cfg` asks for the test scenarios (never trained on).
    """
    if cfg.split == "test":
        raise ValueError("online training must not use the test scenarios")
    name = f"sandbox:{cfg.split}:{cfg.voices}:seed{cfg.seed}:n{cfg.conversations}"
    j = cfg.voice_jitter
    if j.rate or j.pitch or j.variants:
        name += f":jitter{j.rate:g},{j.pitch},{'+'.join(j.variants)}"
    return Environment(name=name, items=user_items(cfg, assets, progress=progress),
                       tokenizer=assets.tokenizer)
