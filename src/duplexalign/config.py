"""Configuration machinery: pydantic models, YAML presets and dotted command-line overrides.

Owns how a config is loaded and validated, not what any stage's options are: each stage defines its
own small `*Config` model (subclass of `StageConfig`) next to its code. A preset YAML file has one
section per stage (`ingest:`, `annotate:`, ...); `load_section` takes a section, applies overrides such
as `annotate.judge.url=http://...` and returns the validated model, or raises `ConfigError` listing every
bad key by its dotted path.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from duplexalign.errors import ConfigError

C = TypeVar("C", bound=BaseModel)

class StageConfig(BaseModel):
    """Base of every stage config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML preset into a dict ({} for an empty file)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"config {path} is not a file (give a YAML preset)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a text file (not UTF-8)") from None
    except OSError as e:
        raise ConfigError(f"config {path} cannot be read ({e.strerror})") from None
    if "\x00" in text:
        raise ConfigError(f"config {path} is not a text file (NUL bytes)")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    unknown = sorted(str(k) for k in data if k not in STAGE_SECTIONS)
    if unknown:
        raise ConfigError([f"{path}: unknown section {k!r}{_did_you_mean(k, STAGE_SECTIONS)}; "
                           f"sections are {', '.join(sorted(STAGE_SECTIONS))}" for k in unknown])
    return data


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _mapping_default(schema: Any, parts: list[str]) -> dict[str, Any] | None:
    """The default of the mapping-valued field at dotted `parts` under `schema` (a pydantic model
    class, or a callable from a top-level key to one), or None when `parts` names no such field."""
    model = schema
    for i, p in enumerate(parts):
        if model is not None and not isinstance(model, type):
            model = model(p) if i == 0 else None
            if model is not None:
                continue
        fields = getattr(model, "model_fields", None)
        if not fields or p not in fields:
            return None
        field = fields[p]
        if i == len(parts) - 1:
            value = field.get_default(call_default_factory=True)
            return _deepcopy(value) if isinstance(value, dict) else None
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return None


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], schema: Any = None
                    ) -> dict[str, Any]:
    """Return a copy of `data` with `a.b.c=value` overrides applied (values parsed as YAML).

    With `schema` (the pydantic model class of `data`, or a callable from a top-level key to its
    model class), an override of one key of a mapping-valued field that `data` does not spell out
    (`rewards.weights.content=2`) starts from that field's default mapping, so the other keys keep
    their defaults instead of vanishing.
    """
    out = _deepcopy(data)
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"override {item!r} must look like key.path=value")
            continue
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            problems.append(f"override {item!r} has an empty key")
            continue
        node = out
        for i, p in enumerate(parts[:-1]):
            if not isinstance(node.get(p), dict):
                node[p] = _mapping_default(schema, parts[:i + 1]) or {}
            node = node[p]
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            problems.append(f"{key.strip()}: value {raw!r} is not valid YAML ({e})")
    if problems:
        raise ConfigError(problems)
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def build(model: type[C], data: dict[str, Any], prefix: str = "") -> C:
    """Validate `data` into `model`; ConfigError names every bad key as a dotted path."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
            problems.append(f"{key}: {err['msg']}")
        raise ConfigError(problems) from None


STAGE_SECTIONS = frozenset({"ingest", "annotate", "pairs", "streams", "train", "evaluate",
                            "report", "sandbox"})
"""Top-level preset sections: one per stage, and `sandbox` (the demo's deploy, test and build)."""


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` merged in, mapping by mapping (values of `over` win)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def split_overrides(overrides: Iterable[str], reads: Iterable[str], fields: Iterable[str] = ()
                    ) -> dict[str, list[str]]:
    """Route `SECTION.key=value` overrides to the sections a command reads.

    Args:
        overrides: the `--set` items.
        reads: the sections the command reads.
        fields: with one section read, its field names: `key=value` without a prefix is then
            meant for it.

    Returns:
        section -> its overrides with the section prefix removed.

    Raises:
        ConfigError: naming every override that nothing reads (another section, or an unknown
            one), so no override is ever dropped silently.
    """
    reads, fields = list(reads), set(fields)
    out: dict[str, list[str]] = {r: [] for r in reads}
    problems = []
    for o in overrides:
        key = o.split("=", 1)[0].strip()
        head = key.split(".", 1)[0]
        if head in reads and "." in key:
            out[head].append(o.strip()[len(head) + 1:])
        elif len(reads) == 1 and (head in fields or head not in STAGE_SECTIONS):
            out[reads[0]].append(o)  # a bad key is named by the section's validation
        elif head in STAGE_SECTIONS:
            problems.append(f"{key}: not read by this command (it reads "
                            f"{', '.join(r + '.*' for r in reads)})")
        else:
            problems.append(f"{key}: unknown section {head!r}{_did_you_mean(head, reads)}; "
                            f"write SECTION.key=value with SECTION one of {', '.join(reads)}")
    if problems:
        raise ConfigError(problems)
    return out


def load_section(model: type[C], section: str, path: str | Path | None = None,
                 overrides: Iterable[str] = (), defaults: dict[str, Any] | None = None) -> C:
    """Load the `section` of a preset (or defaults if `path` is None) with overrides applied.

    Overrides may be written with or without the section prefix (`annotate.x=1` or `x=1`); one
    addressed to another section (`train.lr=1e-5` while loading `annotate`) is an error, since
    nothing would read it. Other sections of the preset are left to the commands that read them.
    `defaults` sit under the preset's section (the sandbox's asset paths).
    """
    data = load_yaml(path) if path else {}
    sec = data.get(section, {}) or {}
    if not isinstance(sec, dict):
        raise ConfigError(f"{section}: must be a mapping")
    local = split_overrides(overrides, [section], model.model_fields)[section]
    return build(model, apply_overrides(merge(defaults or {}, sec), local, model), prefix=section)
