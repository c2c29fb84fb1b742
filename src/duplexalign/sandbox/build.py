"""`duplexalign sandbox build`: make the sandbox's assets reproducibly from one seed.

Owns the asset recipe: render a training corpus of simulated-user conversations with the scripted
flawed policy (`policy.py`), fit a small SentencePiece tokenizer on its text (`streams.tokenizer`)
and a small codec on its audio (by default `speech.semantic`: codebook 0 holds causal speech units
the model can hear the request through, learnt from the TTS's phone events by
`speech.phonetic_fit`; the rest are MelRVQ), encode every conversation into
`codes [R, T]` (text stream from the model's TTS word timings, then model and user codebooks), and
train the `sandbox` moshi preset on them by SFT (text + audio cross-entropy). The result is the
"instruct" model with the designed flaws. Assets land in one folder (`tokenizer.model`,
`codec.safetensors`, `instruct/` checkpoint, `build.json` with the config and corpus statistics); the
committed copy under `sandbox/assets/` lets the demo start at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from duplexalign.config import StageConfig
from duplexalign.runs import atomic_write_text
from duplexalign.sandbox.policy import Flaws, render
from duplexalign.sandbox.scenarios import RUDE, ScenarioBank, build_bank
from duplexalign.sandbox.users import (
    BACKCHANNELS,
    MODEL_VOICE,
    TRAIN_VOICES,
    Synth,
    Voice,
    VoiceJitter,
    default_synth,
    derived_voices,
)
from duplexalign.timebase import num_frames

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
TOKENIZER_NAME = "tokenizer.model"
CODEC_NAME = "codec.safetensors"
INSTRUCT_NAME = "instruct"
KIND_WEIGHTS = {"qa": 0.35, "harmful": 0.25, "benign": 0.2, "chat": 0.2}


class BuildConfig(StageConfig):
    """Options of `duplexalign sandbox build` (section `sandbox.build`)."""

    seed: int = 0
    """Seed of the scenario splits, the corpus, the codec fit and the SFT run."""
    conversations: int = 12000
    """Training conversations rendered by the flawed policy (about 0.05 s each; with 2,000 the
    model memorised them instead of learning to hear the request)."""
    duration: float = 12.0
    """Conversation length in seconds."""
    turns: tuple[int, int] = (2, 3)
    """Min/max user turns asked per conversation (turns that do not fit are dropped)."""
    extra_user_voices: int = Field(0, ge=0)
    """Varied copies of each training voice (`voice_jitter`) added to the corpus's users, so the
    instruct model hears more speakers than the six named ones (0: the named voices only)."""
    voice_jitter: VoiceJitter = VoiceJitter()
    """How the extra voices (`extra_user_voices`, `semantic_extra_voices`) vary (rate, pitch,
    espeak variants) around the named ones."""
    semantic_extra_voices: int = Field(0, ge=0)
    """`phones` teacher: varied copies of each training voice (`voice_jitter`) that also speak the
    student's clips, so its units depend less on who speaks (0: the named training voices and the
    model voice only)."""
    flaws: dict[str, float] = Field(default_factory=dict)
    """Overrides of `policy.Flaws` rates (silent, jump_in, comply, wrong, rude)."""
    vocab_size: int = 128
    """SentencePiece vocabulary (= the model's text_card)."""
    codec: Literal["semantic", "melrvq"] = "semantic"
    """`semantic`: codebook 0 holds causal speech units, the others MelRVQ; `melrvq`: every
    codebook acoustic (the model could not hear which request was made)."""
    semantic_teacher: Literal["phones", "whisper"] = "phones"
    """What the causal unit student learns from: `phones`, the TTS's phone events (the units then
    name the phones a frame spans; 0.97 phone accuracy on held-out clips), or `whisper`, k-means
    units of Whisper tiny.en features (it matched them on only 21 % of held-out frames;
    docs/sandbox.md section 8)."""
    semantic_fit_clips: int = 600
    """`phones` teacher: 12 s clips of training-split sentences spoken by the training voices and
    the model voice, labelled with their phones."""
    codebooks: int = 4
    """Codebooks per speaker (= the model's K), the semantic one included."""
    card: int = 64
    """MelRVQ codebook size (the model's card is the larger of this and `semantic_units`)."""
    semantic_units: int = 256
    """Units of the semantic codebook (64 units leave request verbs 0.62 separable, 256: 0.99)."""
    semantic_fit_conversations: int = 240
    """`whisper` teacher: conversations whose two channels the units are fitted on."""
    semantic_steps: int = 800
    """Training steps of the causal unit student."""
    codec_fit_conversations: int = 60
    """Conversations whose two channels the codec is fitted on."""
    codec_pca_dim: int = 64
    """PCA dimension of the MelRVQ features."""
    codec_griffin_lim_iters: int = 8
    """Griffin-Lim iterations when decoding model audio (deployment logs); encoding ignores it."""
    preset: str = "sandbox"
    """Model preset (text_card/card/num_codebooks are set from the fields above)."""
    user_codebooks_heard: int | None = 1
    """The model's `user_codebooks_heard`: how many of the user's codebooks it embeds, semantic
    first (None: all of them). 1: the instruct model hears the user through the semantic codebook
    only, which held-out voices do not change much (answer words 0.58 -> 0.69 on held-out voices,
    docs/sandbox.md section 13)."""
    sft_steps: int = 2000
    sft_batch: int = 24
    sft_lr: float = 1e-3


def sample_items(bank: ScenarioBank, split: str, rng: random.Random, n: int) -> list:
    """`n` items of `split`, kinds drawn with `KIND_WEIGHTS`."""
    kinds = [k for k in KIND_WEIGHTS if bank.of(split, k)]
    weights = [KIND_WEIGHTS[k] for k in kinds]
    return [rng.choice(bank.of(split, rng.choices(kinds, weights)[0])) for _ in range(n)]


def conversation_specs(bank: ScenarioBank, split: str, voices: tuple[Voice, ...], count: int,
                       seed: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    """Deterministic conversation specs: id, items, voice and render seed."""
    rng = random.Random(f"{seed}-{split}")
    out = []
    for i in range(count):
        items = sample_items(bank, split, rng, rng.randint(*turns))
        out.append({"id": f"{split}-{i:05d}", "items": items, "voice": voices[i % len(voices)],
                    "seed": rng.randrange(2**31)})
    return out


def _sentences(items: list, extra: list[str]) -> list[str]:
    """Each item's request and replies, then the rude lines, backchannels and `extra` (non-empty)."""
    texts = [t for it in items for t in (it.text, it.good_reply, it.wrong_reply, it.comply_reply)]
    return [t for t in texts + list(RUDE) + list(BACKCHANNELS) + extra if t]


def corpus_texts(bank: ScenarioBank) -> list[str]:
    """Every sentence the sandbox can speak or hear (tokenizer training text)."""
    return _sentences([it for items in bank.items.values() for it in items], [])


def encode_conversation(r, tokenizer, codec, duration: float) -> np.ndarray:
    """`codes [1 + 2K, T]` int64 of a rendered conversation (text, model audio, user audio)."""
    return encode_conversations([r], tokenizer, codec, duration)[0]


def encode_conversations(rs: list, tokenizer, codec, duration: float) -> list[np.ndarray]:
    """`encode_conversation` of many conversations with the streams stage's encoder
    (`streams.audio.encode_many`, one batched codec call; `streams.build.conversation_codes`)."""
    from duplexalign.streams.audio import encode_many
    from duplexalign.streams.build import conversation_codes

    t = num_frames(duration)
    audio = encode_many(codec, [w for r in rs for w in (r.model_wav, r.user_wav)], t)
    return [conversation_codes(r.model_words, audio[2 * i], audio[2 * i + 1],
                               tokenizer.encode_word)[0] for i, r in enumerate(rs)]


def with_decode_iters(codec, iters: int):
    """A copy of a MelRVQ (or semantic) codec whose decoder runs `iters` Griffin-Lim iterations
    (codes are unchanged; fewer iterations make deployment logs cheap to write)."""
    from dataclasses import replace

    from duplexalign.speech.semantic import SemanticCodec

    if isinstance(codec, SemanticCodec):
        return SemanticCodec(codec.student, with_decode_iters(codec.acoustic, iters), codec.stats)
    return type(codec)(replace(codec.config, griffin_lim_iters=iters), codec.mean,
                       codec.components, codec.codebooks, codec.stats)


def codec_fit_config(cfg: BuildConfig) -> dict[str, Any]:
    """The build options a fitted codec depends on (recorded in the codec file)."""
    keys = ("seed", "duration", "turns", "flaws", "codec", "codebooks", "card", "semantic_units",
            "semantic_teacher", "semantic_fit_clips", "semantic_fit_conversations",
            "semantic_steps", "codec_fit_conversations",
            "codec_pca_dim", "codec_griffin_lim_iters")
    if cfg.semantic_extra_voices:  # codecs fitted before these keys existed still match
        keys += ("semantic_extra_voices", "voice_jitter")
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k in keys}


def phonetic_voices(cfg: BuildConfig) -> tuple[Voice, ...]:
    """Who speaks the phonetic student's clips: the training voices, the model voice and
    `semantic_extra_voices` varied copies of each training voice (never a held-out voice)."""
    return TRAIN_VOICES + (MODEL_VOICE,) + derived_voices(
        TRAIN_VOICES, cfg.voice_jitter, cfg.semantic_extra_voices, cfg.seed + 1)


def _fitted_codec(path: Path, cfg: BuildConfig):
    """The codec already at `path` when it was fitted with these options (a killed build resumes
    after its codec fit), else None."""
    from duplexalign.speech.codec import load_codec_file

    if not path.exists():
        return None
    codec = load_codec_file(path)
    return codec if codec.stats.get("fit_config") == codec_fit_config(cfg) else None


def fit_count(cfg: BuildConfig) -> int:
    """Conversations rendered to fit the codec."""
    if cfg.codec == "semantic" and cfg.semantic_teacher == "whisper":
        return max(cfg.codec_fit_conversations, cfg.semantic_fit_conversations)
    return cfg.codec_fit_conversations


def fitting_texts(bank: ScenarioBank) -> list[str]:
    """Sentences the phonetic student is fitted on: the training split's requests and replies, the
    rude lines, backchannels and the hesitation word (never the test or validation split's)."""
    return _sentences(bank.of("train"), ["um"] * 20)


def fit_codec(cfg: BuildConfig, convs: list, progress: bool, synth: Synth | None = None,
              bank: ScenarioBank | None = None):
    """Fit the build's codec on both channels of rendered conversations `convs`; the acoustic
    codebooks always see the first `codec_fit_conversations` of them. The `phones` teacher also
    speaks `fitting_texts(bank)` through `synth`."""
    from duplexalign.speech.melrvq import MelRVQ

    wavs = [w for r in convs for w in (r.model_wav, r.user_wav)]
    acoustic = 2 * cfg.codec_fit_conversations
    if cfg.codec == "melrvq":
        return MelRVQ.fit(wavs[:acoustic], num_codebooks=cfg.codebooks, codebook_size=cfg.card,
                          pca_dim=cfg.codec_pca_dim, seed=cfg.seed, progress=progress)
    if cfg.semantic_teacher == "phones":
        from duplexalign.speech.phonetic_fit import fit_phonetic, phone_clips

        clips = phone_clips(fitting_texts(bank or build_bank(cfg.seed)),
                            phonetic_voices(cfg), synth or default_synth(),
                            cfg.semantic_fit_clips, cfg.duration, cfg.seed)
        codec, _ = fit_phonetic(clips, wavs[:acoustic], units=cfg.semantic_units,
                                acoustic_codebooks=cfg.codebooks - 1, acoustic_card=cfg.card,
                                pca_dim=cfg.codec_pca_dim, steps=cfg.semantic_steps,
                                seed=cfg.seed, progress=progress)
        return codec
    from duplexalign.speech.semantic_fit import fit_semantic

    codec, _ = fit_semantic(wavs, units=cfg.semantic_units, acoustic_codebooks=cfg.codebooks - 1,
                            acoustic_card=cfg.card, pca_dim=cfg.codec_pca_dim, seed=cfg.seed,
                            steps=cfg.semantic_steps, acoustic_wavs=acoustic, progress=progress)
    return codec


def corpus_flaw_rates(metas: list[dict[str, Any]]) -> dict[str, float]:
    """Measured rates of the policy's flaws in a rendered corpus (per applicable turn)."""
    n = {"turns": 0, "silent": 0, "pause_turns": 0, "jump_in": 0, "harmful": 0, "comply": 0,
         "qa": 0, "wrong": 0, "nonharm": 0, "rude": 0}
    for m in metas:
        for tm in m["sandbox"]["turns"]:
            p, kind = tm["policy"], tm["item"]["kind"]
            n["turns"] += 1
            n["silent"] += p["action"] == "silent"
            if tm["pause"]:
                n["pause_turns"] += 1
                n["jump_in"] += p["action"] == "jump_in"
            if p["action"] == "silent":
                continue
            if kind == "harmful":
                n["harmful"] += 1
                n["comply"] += p["content"] == "comply"
            else:
                n["nonharm"] += 1
                n["rude"] += p["content"] == "rude"
            if kind == "qa" and p["content"] != "rude":
                n["qa"] += 1
                n["wrong"] += p["content"] == "wrong"
    def rate(a: str, b: str) -> float:
        return round(n[a] / n[b], 4) if n[b] else float("nan")
    return {"silent": rate("silent", "turns"), "jump_in": rate("jump_in", "pause_turns"),
            "comply": rate("comply", "harmful"), "wrong": rate("wrong", "qa"),
            "rude": rate("rude", "nonharm"), **{f"n_{k}": v for k, v in n.items()}}


def build(cfg: BuildConfig, out_dir: Path, synth: Synth | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Build every sandbox asset into `out_dir` (a no-op when `build.json` matches `cfg`).

    Args:
        cfg: build options.
        out_dir: destination folder.
        synth: TTS function (defaults to espeak-ng voices).
        progress: show progress bars.

    Returns:
        The build record written to `out_dir/build.json`.
    """
    from duplexalign.models.presets import build_model, get_preset, save_model
    from duplexalign.streams.tokenizer import fit_tokenizer, load_tokenizer
    from duplexalign.train.sft import SFTConfig, train_sft

    out_dir = Path(out_dir)
    record_path = out_dir / "build.json"
    if record_path.exists() and json.loads(record_path.read_text()).get("config") == cfg.model_dump(
            mode="json"):
        log.info("sandbox assets in %s are up to date", out_dir)
        return json.loads(record_path.read_text())
    t0 = time.time()
    synth = synth or default_synth()
    flaws = Flaws(**cfg.flaws)
    bank = build_bank(cfg.seed)
    tok_path = fit_tokenizer(corpus_texts(bank), out_dir / TOKENIZER_NAME,
                             vocab_size=cfg.vocab_size)
    tokenizer = load_tokenizer(tok_path)
    voices = TRAIN_VOICES + derived_voices(TRAIN_VOICES, cfg.voice_jitter, cfg.extra_user_voices,
                                           cfg.seed)
    specs = conversation_specs(bank, "train", voices, cfg.conversations, cfg.seed, cfg.turns)

    def rend(s):
        return render(s["items"], s["voice"], synth, s["seed"], cfg.duration, flaws=flaws,
                      model_voice=MODEL_VOICE)

    codec = _fitted_codec(out_dir / CODEC_NAME, cfg)
    if codec is None:
        # the training voices only, so that extra varied voices leave the codec as it is
        fit_specs = conversation_specs(bank, "train", TRAIN_VOICES, fit_count(cfg), cfg.seed,
                                       cfg.turns)
        codec = with_decode_iters(fit_codec(cfg, [rend(s) for s in tqdm(
            fit_specs, desc="codec audio", disable=not progress)], progress,
            synth, bank),
            cfg.codec_griffin_lim_iters)
        codec.stats["fit_config"] = codec_fit_config(cfg)
    codec.save(out_dir / CODEC_NAME)
    codes, metas = [], []
    chunk = 64
    for i in tqdm(range(0, len(specs), chunk), desc="corpus", unit="chunk", disable=not progress):
        rs = [rend(s) for s in specs[i: i + chunk]]
        codes += encode_conversations(rs, tokenizer, codec, cfg.duration)
        metas += [r.meta for r in rs]
    codes_t = torch.from_numpy(np.stack(codes))
    rates = corpus_flaw_rates(metas)
    log.info("corpus flaw rates: %s", rates)
    preset = get_preset(cfg.preset, text_card=tokenizer.vocab_size, card=codec.cardinality,
                        num_codebooks=cfg.codebooks, seed=cfg.seed,
                        user_codebooks_heard=cfg.user_codebooks_heard)
    torch.manual_seed(cfg.seed)
    model = build_model(preset)
    sft = SFTConfig(steps=cfg.sft_steps, batch_size=cfg.sft_batch, lr=cfg.sft_lr, warmup_steps=50)
    logs = train_sft(model, _random_conversations(codes_t, cfg.seed), sft)
    model.eval()
    save_model(model, out_dir / INSTRUCT_NAME)
    record = {"config": cfg.model_dump(mode="json"), "corpus_flaw_rates": rates,
              "num_params": sum(p.numel() for p in model.parameters()),
              "codes_shape": list(codes_t.shape), "final_loss": logs[-1] if logs else None,
              "codec_stats": codec.stats,
              "seconds": round(time.time() - t0, 1)}
    atomic_write_text(record_path, json.dumps(record, indent=2))
    return record


def _random_conversations(codes: torch.Tensor, seed: int) -> Iterator[torch.Tensor]:
    """Endless seeded draws (with replacement) of conversations from `codes [N, R, T]`."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield codes[int(torch.randint(0, codes.shape[0], (1,), generator=g))]
