"""config: YAML presets, dotted overrides, and errors that name every bad key."""

import pytest
from pydantic import BaseModel

from duplexalign.config import StageConfig, apply_overrides, load_section, load_yaml
from duplexalign.errors import ConfigError


class Judge(BaseModel):
    url: str = "http://127.0.0.1:11434"
    concurrency: int = 4


class AnnotateConfig(StageConfig):
    judge: Judge = Judge()
    threshold: float = 0.5
    names: list[str] = []


def test_defaults_without_a_file():
    assert load_section(AnnotateConfig, "annotate") == AnnotateConfig()


def test_yaml_section_and_overrides_with_and_without_prefix(tmp_path):
    p = tmp_path / "preset.yaml"
    p.write_text("annotate:\n  threshold: 0.7\n  judge:\n    concurrency: 2\npairs:\n  x: 1\n")
    cfg = load_section(AnnotateConfig, "annotate", p,
                       ["annotate.judge.concurrency=8", "names=[a, b]", "judge.url=http://h:1"])
    assert cfg.threshold == 0.7
    assert cfg.judge.concurrency == 8
    assert cfg.judge.url == "http://h:1"
    assert cfg.names == ["a", "b"]


def test_overrides_of_other_sections_are_errors_naming_the_key(tmp_path):
    p = tmp_path / "preset.yaml"
    p.write_text("annotate:\n  threshold: 0.7\npairs:\n  x: 1\n")
    cfg = load_section(AnnotateConfig, "annotate", p, ["annotate.threshold=0.9"])
    assert cfg.threshold == 0.9  # the preset's other sections are left to their commands
    with pytest.raises(ConfigError) as e:
        load_section(AnnotateConfig, "annotate", p, ["train.lr=1e-5", "pairs.x=2"])
    assert [m.split(":")[0] for m in e.value.problems] == ["train.lr", "pairs.x"]
    assert "not read by this command" in str(e.value)
    # A field of this section is never mistaken for another section's prefix.
    cfg = load_section(AnnotateConfig, "annotate", p, ["judge.concurrency=3"])
    assert cfg.judge.concurrency == 3
    with pytest.raises(ConfigError, match="annotate.typo"):
        load_section(AnnotateConfig, "annotate", p, ["typo.x=1"])


def test_every_bad_key_is_named_with_its_dotted_path(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_section(AnnotateConfig, "annotate", None,
                     ["judge.concurrency=many", "threshhold=0.1"])
    msg = str(e.value)
    assert "annotate.judge.concurrency" in msg
    assert "annotate.threshhold" in msg
    assert len(e.value.problems) == 2


def test_malformed_overrides_are_reported_together():
    with pytest.raises(ConfigError) as e:
        apply_overrides({}, ["novalue", "=3", "a=[unclosed"])
    assert len(e.value.problems) == 3
    assert "a: value" in e.value.problems[2]


def test_override_does_not_mutate_input():
    data = {"a": {"b": 1}}
    out = apply_overrides(data, ["a.b=2", "a.c.d=x"])
    assert data == {"a": {"b": 1}} and out == {"a": {"b": 2, "c": {"d": "x"}}}


class Weighted(BaseModel):
    weights: dict[str, float] = {"a": 1.0, "b": 2.0}


class TrainLike(StageConfig):
    loss: Weighted = Weighted()


def test_override_of_one_key_of_a_default_mapping_keeps_the_other_keys():
    cfg = load_section(TrainLike, "train", overrides=["train.loss.weights.b=5"])
    assert cfg.loss.weights == {"a": 1.0, "b": 5.0}
    # a new key joins the defaults; a mapping the preset spells out is the base instead
    assert apply_overrides({}, ["loss.weights.c=3"], TrainLike) == {
        "loss": {"weights": {"a": 1.0, "b": 2.0, "c": 3}}}
    assert apply_overrides({"loss": {"weights": {"a": 0}}}, ["loss.weights.c=3"], TrainLike) == {
        "loss": {"weights": {"a": 0, "c": 3}}}
    # a top-level key -> model callable (the pipeline's sections)
    assert apply_overrides({}, ["train.loss.weights.a=0"],
                           lambda k: TrainLike if k == "train" else None) == {
        "train": {"loss": {"weights": {"a": 0, "b": 2.0}}}}


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(top)
    sec = tmp_path / "sec.yaml"
    sec.write_text("annotate: 3\n")
    with pytest.raises(ConfigError, match="annotate: must be a mapping"):
        load_section(AnnotateConfig, "annotate", sec)


def test_assignment_is_validated():
    cfg = AnnotateConfig()
    with pytest.raises(ValueError):
        cfg.threshold = "high"
