"""Released Kyutai layout: loaded through moshi's loaders, with name/shape checks that say what
differs; the real 7B configuration counted on the meta device."""

from __future__ import annotations

import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.models.forward import text_logits
from duplexalign.models.presets import build_model, get_preset
from duplexalign.models.released import CONFIG_NAME, count_parameters, released_files

from .released_helpers import write_released


def _codes(preset: str = "tiny", t: int = 12) -> torch.Tensor:
    p = get_preset(preset)
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, min(p.card, p.text_card), (2, p.num_rows, t), generator=g)


def test_released_folder_loads_exactly(tmp_path):
    ref = write_released(tmp_path / "rel", "tiny")
    files = released_files(tmp_path / "rel")
    assert files.tokenizer is not None and files.config is not None and files.mimi is None
    model = build_model(get_preset("tiny", weights=tmp_path / "rel"))
    assert model.training
    codes = _codes()
    assert torch.equal(text_logits(model, codes), text_logits(ref, codes))
    # the fused projections were split by moshi's hook: every tensor equals the source model's
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_released_folder_without_config_uses_the_preset(tmp_path):
    write_released(tmp_path / "rel", "tiny", config=False)
    model = build_model(get_preset("tiny", weights=tmp_path / "rel"))
    assert model.dep_q == 4


def test_config_difference_is_named(tmp_path):
    write_released(tmp_path / "rel", "tiny")
    with pytest.raises(ConfigError) as e:
        build_model(get_preset("tiny", weights=tmp_path / "rel", num_layers=3))
    assert "num_layers: 2 in config.json, 3 in preset 'tiny'" in str(e.value)


def test_tensor_differences_are_named(tmp_path):
    write_released(tmp_path / "rel", "tiny", config=False)
    with pytest.raises(ConfigError) as e:
        build_model(get_preset("tiny", weights=tmp_path / "rel", num_layers=3, text_card=80))
    msg = str(e.value)
    assert "missing: transformer.layers.2.self_attn.in_projs.0.weight [96, 32]" in msg
    assert "shape: text_emb.weight file [65, 32] model [81, 32]" in msg
    assert "shape: text_linear.weight file [64, 32] model [80, 32]" in msg


def test_folder_without_weights_lists_its_files(tmp_path):
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / CONFIG_NAME).write_text("{}")
    with pytest.raises(ConfigError, match=r"has no model.safetensors \(found: config.json\)"):
        build_model(get_preset("tiny", weights=tmp_path / "rel"))


def test_mimi_file_is_found_when_present(tmp_path):
    write_released(tmp_path / "rel", "tiny", mimi=True)
    assert released_files(tmp_path / "rel").mimi is not None


def test_moshi_7b_counts_on_meta():
    n = count_parameters(get_preset("moshi_7b"))
    print(f"moshi_7b parameters: {n:,}")
    assert 7.6e9 < n < 7.8e9  # the released Moshi 7B (reference/moshi.md: 7.688 B)
