"""Fixtures of the evaluation tests: the tiny model preset, a fitted tokenizer, a small codec."""

from __future__ import annotations

import pytest

SENTENCES = [
    "what is the capital of france", "paris is the capital of france", "the amazon river",
    "i am sorry i cannot help with that", "sure here is how to kill a python process",
    "who wrote hamlet william shakespeare", "yes okay right i see", "hello how are you today",
    "the answer is four", "water boils at one hundred degrees", "let me think about that",
]


def tiny_lm():
    """The `tiny` preset (2 layers, 4 + 4 codebooks, Moshi delays) built by `models.presets`."""
    from duplexalign.models.presets import build_model

    return build_model("tiny").eval()


@pytest.fixture
def lm():
    return tiny_lm()


@pytest.fixture(scope="session")
def spm_tokenizer(tmp_path_factory):
    """The project's SentencePiece tokenizer (EPAD 0, PAD 3 reserved) fitted on a few sentences."""
    from duplexalign.streams.tokenizer import fit_tokenizer, load_tokenizer

    path = fit_tokenizer(SENTENCES * 5, tmp_path_factory.mktemp("tok") / "tok.model",
                         vocab_size=64)
    return load_tokenizer(path)


@pytest.fixture(scope="session")
def eval_assets(tmp_path_factory):
    """A tiny checkpoint (preset `tiny`, its tokenizer fitted here) and a small MelRVQ codec,
    both real components saved to disk as `duplexalign evaluate` reads them."""
    from duplexalign.models.presets import build_model, get_preset, save_model
    from duplexalign.speech.melrvq import MelRVQ
    from duplexalign.speech.voices import get_voice
    from duplexalign.streams.tokenizer import fit_tokenizer

    root = tmp_path_factory.mktemp("eval_assets")
    tok = fit_tokenizer(SENTENCES * 5, root / "tok.model", vocab_size=64)
    model = build_model(get_preset("tiny", tokenizer=tok))
    ckpt = root / "ckpt"
    save_model(model, ckpt)
    voice = get_voice("user_6")
    clips = [voice.synthesize(s).wav for s in SENTENCES[:6]]
    codec = MelRVQ.fit(clips * 2, num_codebooks=4, codebook_size=64, pca_dim=32, niter=5,
                       progress=False)
    codec_path = codec.save(root / "codec.safetensors")
    return {"checkpoint": ckpt, "tokenizer": tok, "codec": codec_path, "root": root}
