"""Versioned prompt templates shipped as package data (`judges/prompts/<id>.yaml`).

Owns loading and validating the judge and rewriter templates. A template id is recorded with every
verdict, so a prompt change is a new file with a new id rather than an edit of an old one.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from duplexalign.errors import ConfigError


class FewShot(BaseModel):
    """One worked example: a transcript and the JSON answer the judge should give."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    transcript: str
    answer: dict[str, Any]


class JudgeTemplate(BaseModel):
    """Content-judge prompt: system text, user text with `{transcript}`/`{reply_ids}`, examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    system: str
    user: str
    examples: list[FewShot] = []
    scores: bool = True
    """The answer carries five 1-5 scores per reply; False asks only for the problem list (about
    half the generated tokens, so about twice as fast on a CPU; flags then come from the list)."""


class RewriteTemplate(BaseModel):
    """Rewriter prompt: system text, one hint per problem category, the rejected-draft note."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    system: str
    hints: dict[str, str]
    rejected: str
    retry: str


def _read(name: str) -> dict[str, Any]:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        text = p.read_text(encoding="utf-8")
    else:
        f = resources.files("duplexalign.judges") / "prompts" / f"{name}.yaml"
        if not f.is_file():
            raise ConfigError(f"prompt template {name!r} not found (neither a .yaml path nor a "
                              "template shipped in duplexalign/judges/prompts)")
        text = f.read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def load_judge_template(name: str = "judge_v1") -> JudgeTemplate:
    """The judge template `name` (a shipped id or a path to a YAML file)."""
    try:
        return JudgeTemplate.model_validate(_read(name))
    except ValidationError as e:
        raise ConfigError(f"judge template {name}: {e}") from None


@cache
def load_rewrite_template(name: str = "rewrite_v1") -> RewriteTemplate:
    """The rewriter template `name` (a shipped id or a path to a YAML file)."""
    try:
        return RewriteTemplate.model_validate(_read(name))
    except ValidationError as e:
        raise ConfigError(f"rewrite template {name}: {e}") from None
