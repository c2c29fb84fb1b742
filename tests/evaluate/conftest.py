"""Fixtures of the evaluation tests: a tiny moshi LMModel and a tiny SentencePiece tokenizer."""

from __future__ import annotations

import io

import pytest
import torch

TEXT_CARD = 96
CARD = 32
SENTENCES = [
    "what is the capital of france", "paris is the capital of france", "the amazon river",
    "i am sorry i cannot help with that", "sure here is how to kill a python process",
    "who wrote hamlet william shakespeare", "yes okay right i see", "hello how are you today",
    "the answer is four", "water boils at one hundred degrees", "let me think about that",
]


def tiny_lm(seed: int = 0):
    """A 2-layer LMModel with 4 + 4 codebooks (Moshi delays), built directly with moshi."""
    from moshi.models.lm import LMModel

    torch.manual_seed(seed)
    model = LMModel(
        delays=[0, 0, 1, 1, 1, 0, 1, 1, 1], n_q=8, dep_q=4, card=CARD, text_card=TEXT_CARD,
        dim=32, num_heads=2, num_layers=2, hidden_scale=2, causal=True, context=200,
        gating="silu", norm="rms_norm_f32", positional_embedding="rope", max_period=10000,
        depformer_dim=16, depformer_num_heads=2, depformer_num_layers=1,
        depformer_dim_feedforward=32, depformer_multi_linear=True, depformer_pos_emb="none",
        depformer_weights_per_step=True, existing_text_padding_id=3,
    )
    return model.eval()


@pytest.fixture
def lm():
    return tiny_lm()


@pytest.fixture(scope="session")
def spm_tokenizer():
    """A SentencePiece model with unk 0 (EPAD role), bos 1, eos 2, pad 3 (PAD role)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 5), model_writer=buf, vocab_size=TEXT_CARD,
        model_type="unigram", pad_id=3, unk_id=0, bos_id=1, eos_id=2, hard_vocab_limit=False,
        minloglevel=2)
    return spm.SentencePieceProcessor(model_proto=buf.getvalue())


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
