"""Tests of the moshi backend: presets, checkpoints, LoRA, text-only and shared-prefix forwards."""

from __future__ import annotations

import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.models.forward import (
    rescore_text_logprobs,
    shared_prefix_text_logits,
    text_logits,
)
from duplexalign.models.lora import lora_scale, trainable_parameters
from duplexalign.models.presets import PRESETS, build_model, get_preset, load_model, save_model


def _codes(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 64, (b, 9, t), generator=g)


def test_presets_sizes_and_layout():
    tiny = build_model("tiny")
    n = sum(p.numel() for p in tiny.parameters())
    assert 0.1e6 <= n <= 0.6e6
    assert tiny.num_codebooks == 9 and tiny.dep_q == 4
    assert tiny.delays == [0, 0, 1, 1, 1, 0, 1, 1, 1]
    assert set(PRESETS.names()) >= {"tiny", "sandbox", "moshi_7b"}
    assert PRESETS.get("sandbox").dim == 128


def test_moshi_7b_needs_local_weights(tmp_path):
    with pytest.raises(ConfigError, match="needs local weights"):
        build_model("moshi_7b")
    with pytest.raises(ConfigError, match="does not exist"):
        build_model("moshi_7b", weights=tmp_path / "nope.safetensors")


def test_same_seed_same_model_and_checkpoint_roundtrip(tmp_path):
    a, b = build_model("tiny"), build_model("tiny")
    codes = _codes(2, 20)
    assert torch.equal(text_logits(a, codes), text_logits(b, codes))
    with torch.no_grad():
        a.text_linear.weight.add_(1.0)
    save_model(a, tmp_path / "ck")
    c = load_model(tmp_path / "ck")
    assert torch.equal(text_logits(a, codes), text_logits(c, codes))


def test_the_same_model_saved_twice_gives_the_same_bytes(tmp_path):
    from safetensors import safe_open

    model = build_model("tiny")
    a, b = (save_model(model, tmp_path / name) for name in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    with safe_open(str(a), "pt") as f:  # one key: several are written in a random order
        assert f.metadata() == {"duplexalign": '{"adapters_only": false, "preset": "tiny"}'}


def test_text_only_path_equals_full_forward():
    model = build_model("tiny")
    codes = _codes(2, 30)
    codes[:, 0, 5] = -1  # a no-loss text frame is still an input-free frame in both paths
    full = model(codes).text_logits[:, 0]
    assert torch.equal(text_logits(model, codes), full)
    lp = rescore_text_logprobs(model, codes)
    ref = torch.log_softmax(full, -1).gather(-1, codes[:, 0].clamp(min=0)[..., None])[..., 0]
    assert lp[0, 5] == 0 and torch.allclose(lp[:, 6:], ref[:, 6:])


def test_shared_prefix_equals_separate_forwards():
    model = build_model("tiny")
    ctx = _codes(2, 40, seed=1)
    chosen, rejected = ctx.clone(), ctx.clone()
    rejected[:, :5, 30:] = _codes(2, 10, seed=2)[:, :5]  # text + model audio differ in the window
    both = torch.cat([chosen, rejected])  # variant-major: [chosen b0, chosen b1, rejected b0, ...]
    shared = shared_prefix_text_logits(model, both, 30, 2)
    separate = text_logits(model, both)[:, 30:]
    assert torch.allclose(shared, separate, atol=1e-5)


def test_lora_zero_init_and_scale_zero_is_bit_exact_base():
    base = build_model("tiny")
    lora = build_model(get_preset("tiny", lora={"enabled": True, "rank": 4}))
    codes = _codes(2, 20)
    ref = text_logits(base, codes)
    assert torch.equal(text_logits(lora, codes), ref)  # B = 0: wrapping changes nothing
    # only temporal-transformer adapters train
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("transformer.") and ".lora_" in n for n in names)
    assert trainable_parameters(lora) == sum(p.numel() for n, p in lora.named_parameters()
                                             if ".lora_" in n)
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_()
    assert not torch.allclose(text_logits(lora, codes), ref)
    with lora_scale(lora, 0.0):
        assert torch.equal(text_logits(lora, codes), ref)
    assert not torch.allclose(text_logits(lora, codes), ref)  # scaling restored


def test_adapter_only_checkpoint(tmp_path):
    p = get_preset("tiny", lora={"enabled": True, "rank": 4})
    base = build_model("tiny")
    save_model(base, tmp_path / "base")
    p = p.model_copy(update={"weights": tmp_path / "base" / "model.safetensors"})
    lora = build_model(p)
    with torch.no_grad():
        for n, q in lora.named_parameters():
            if "lora_B" in n:
                q.normal_()
    save_model(lora, tmp_path / "ad", adapters_only=True)
    again = load_model(tmp_path / "ad")
    codes = _codes(1, 16)
    assert torch.equal(text_logits(lora, codes), text_logits(again, codes))


def test_user_codebooks_past_the_heard_ones_are_silence_and_stay_so(tmp_path):
    model = build_model(get_preset("tiny", user_codebooks_heard=1))
    k = model.dep_q
    codes = torch.randint(0, 60, (2, 1 + 2 * k, 12))
    silenced = codes.clone()
    silenced[:, 2 + k:] = -1  # moshi's zero token: the user's acoustic codebooks read as nothing
    noisy = codes.clone()
    noisy[:, 2 + k:] = torch.randint(0, 60, noisy[:, 2 + k:].shape)
    with torch.no_grad():
        ref = model(silenced).text_logits
        assert torch.allclose(model(codes).text_logits, ref, atol=1e-6)
        assert torch.allclose(model(noisy).text_logits, ref, atol=1e-6)
        changed = codes.clone()
        changed[:, 1 + k] = (changed[:, 1 + k] + 1) % 60  # the semantic codebook is heard
        assert not torch.allclose(model(changed).text_logits, ref, atol=1e-4)
    model(codes).text_logits.sum().backward()
    assert all(model.emb[i].weight.grad is None for i in range(k + 1, 2 * k))
    assert model.emb[k].weight.grad is not None
    # the saved weights are zero, so a loader that knows nothing of the setting agrees
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.duplexalign_preset.user_codebooks_heard == 1
    assert all(not back.emb[i].weight.detach().any() for i in range(k + 1, 2 * k))
    with pytest.raises(ValueError, match="exceeds num_codebooks"):
        get_preset("tiny", user_codebooks_heard=5)
