"""Deployment of the sandbox model: batched streaming rollouts with simulated users, logged to disk.

Owns "putting the model in front of users": for each conversation spec (scenario items, a user voice,
a seed) the simulated user's script is rendered and encoded with the sandbox codec, the user codes
are streamed into the model frame by frame (`evaluate.rollout`, batched `LMGen`), and the model's
text stream (timed words) and decoded audio are captured. `write_logs` stores the result in the
moshi-finetune layout (stereo wav: channel 0 model, channel 1 user; JSON with the model's timed words
from its text stream and the user's words from the real ASR on the user channel) plus `scenarios.jsonl`, the
ground truth per conversation id for the oracle judge and the evaluation. It loads the assets that
`build.py` makes and knows nothing about later stages.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from duplexalign.config import StageConfig
from duplexalign.records import Word
from duplexalign.runs import atomic_write_text
from duplexalign.sandbox.build import (
    CODEC_NAME,
    INSTRUCT_NAME,
    TOKENIZER_NAME,
    conversation_specs,
)
from duplexalign.sandbox.outcomes import TurnOutcome, turn_outcomes
from duplexalign.sandbox.policy import render
from duplexalign.sandbox.scenarios import build_bank
from duplexalign.sandbox.users import (
    HELDOUT_VOICES,
    TRAIN_VOICES,
    Synth,
    VoiceJitter,
    default_synth,
    jittered_voice,
)
from duplexalign.speech.audio import merge_channels, write_audio
from duplexalign.timebase import SAMPLE_RATE, num_frames

log = logging.getLogger(__name__)

SCENARIOS_NAME = "scenarios.jsonl"


class SamplingSettings(StageConfig):
    """LMGen sampling of a sandbox rollout (see `evaluate.rollout.SamplingConfig`)."""

    temp: float = 1.0
    temp_text: float = 1.0
    top_k: int = 0
    top_k_text: int = 0


class DeployConfig(StageConfig):
    """Who the model talks to and how it samples (section `sandbox.deploy`)."""

    split: str = "train"
    """Scenario split the users ask from ("train", "validation" or "test")."""
    voices: str = "train"
    """User voices: "train" or "heldout"."""
    conversations: int = 300
    duration: float = 12.0
    turns: tuple[int, int] = (2, 3)
    seed: int = 1
    """Seed of the conversation specs (scenario draws, user timing) and of sampling."""
    voice_jitter: VoiceJitter = VoiceJitter()
    """Per-conversation variation of the user's voice (rate, pitch) around the split's named
    voices: more speakers for the model to generalise from (the held-out voices are never used)."""
    sampling: SamplingSettings = SamplingSettings()
    batch_size: int = 64


@dataclass
class Assets:
    """The loaded sandbox assets: tokenizer, codec and the path of the instruct checkpoint."""

    root: Path
    tokenizer: Any
    codec: Any

    @property
    def instruct(self) -> Path:
        return self.root / INSTRUCT_NAME

    @classmethod
    def load(cls, root: Path) -> Assets:
        """Load the tokenizer and codec from `root` (a folder written by `build.build`)."""
        from duplexalign.speech.codec import load_codec_file
        from duplexalign.streams.tokenizer import load_tokenizer

        root = Path(root)
        return cls(root=root, tokenizer=load_tokenizer(root / TOKENIZER_NAME),
                   codec=load_codec_file(root / CODEC_NAME))


@dataclass
class Deployed:
    """One deployed conversation: the rollout plus the ground truth and outcomes."""

    id: str
    meta: dict[str, Any]
    rollout: Any
    outcomes: list[TurnOutcome]


def user_items(cfg: DeployConfig, assets: Assets, synth: Synth | None = None,
               progress: bool = True) -> list:
    """Render the simulated users of `cfg` and encode them: one `evaluate.rollout.UserItem` each
    (user codes [K, T], user words, meta with the scenario ground truth, user wav)."""
    from duplexalign.evaluate.rollout import UserItem

    synth = synth or default_synth()
    bank = build_bank(0)
    voices = TRAIN_VOICES if cfg.voices == "train" else HELDOUT_VOICES
    specs = conversation_specs(bank, cfg.split, voices, cfg.conversations, cfg.seed, cfg.turns)
    t = num_frames(cfg.duration)
    items = []
    for s in tqdm(specs, desc=f"users ({cfg.split})", disable=not progress):
        voice = jittered_voice(s["voice"], cfg.voice_jitter, s["seed"])
        r = render(s["items"], voice, synth, s["seed"], cfg.duration, with_policy=False)
        codes = assets.codec.encode(r.user_wav)[:, :t]
        r.meta["sandbox"]["split"] = cfg.split
        items.append(UserItem(id=s["id"], user_codes=codes, user_words=r.user_words,
                              meta=r.meta, user_wav=r.user_wav))
    return items


def deploy(model, cfg: DeployConfig, assets: Assets, items: list | None = None,
           decode_audio: bool = True, progress: bool = True) -> list[Deployed]:
    """Roll `model` out against the simulated users of `cfg`.

    Args:
        model: a moshi `LMModel` of the sandbox preset.
        cfg: deployment options.
        assets: tokenizer and codec.
        items: pre-rendered `UserItem`s (rendered from `cfg` when None).
        decode_audio: decode the model's codes to audio (needed for logs, not for scoring).
        progress: show progress bars.

    Returns:
        One `Deployed` per conversation, with its per-turn ground-truth outcomes.
    """
    from duplexalign.evaluate.rollout import SamplingConfig, rollout

    items = items if items is not None else user_items(cfg, assets, progress=progress)
    sampling = SamplingConfig(use_sampling=True, temp=cfg.sampling.temp,
                              temp_text=cfg.sampling.temp_text, top_k=cfg.sampling.top_k,
                              top_k_text=cfg.sampling.top_k_text, seed=cfg.seed,
                              batch_size=cfg.batch_size)
    rolls = rollout(model, items, assets.tokenizer, sampling,
                    codec=assets.codec if decode_audio else None, progress=progress)
    return [Deployed(id=r.id, meta=r.item.meta, rollout=r,
                     outcomes=turn_outcomes(r.item.meta, r.model_words, cfg.duration))
            for r in rolls]


def transcribe_users(deployed: list[Deployed], asr, gap: float = 2.0,
                     group: int = 25, progress: bool = True) -> list[list[Word]]:
    """The user channel of every conversation transcribed by the real ASR.

    Conversations are concatenated `group` at a time with `gap` seconds of silence between them
    (long-form ASR is several times cheaper per second than many short calls), and each word is
    mapped back to its conversation by time.

    Args:
        deployed: conversations with `rollout.item.user_wav` [S] at 24 kHz.
        asr: an `speech.base.ASR` backend.
        gap: silence between concatenated conversations (seconds).
        group: conversations per ASR call.
        progress: show a progress bar.

    Returns:
        Per conversation, its user words (seconds from that conversation's start).
    """
    out: list[list[Word]] = []
    pad = np.zeros(int(gap * SAMPLE_RATE), np.float32)
    for g in tqdm(range(0, len(deployed), group), desc="user asr", disable=not progress):
        chunk = deployed[g:g + group]
        offsets, pieces, t = [], [], 0.0
        for d in chunk:
            offsets.append(t)
            pieces += [d.rollout.item.user_wav, pad]
            t += (len(d.rollout.item.user_wav) + len(pad)) / SAMPLE_RATE
        words = asr.transcribe(np.concatenate(pieces), SAMPLE_RATE)
        for i, (off, d) in enumerate(zip(offsets, chunk, strict=True)):
            end = offsets[i + 1] if i + 1 < len(offsets) else float("inf")
            dur = len(d.rollout.item.user_wav) / SAMPLE_RATE
            mine = [w for w in words if off <= (w.start + w.end) / 2 < end]
            out.append([Word(text=w.text.strip(), start=round(min(max(w.start - off, 0.0), dur), 3),
                             end=round(min(max(w.end - off, 0.0), dur), 3))
                        for w in mine if w.text.strip() and w.start - off < dur])
    return out


def write_logs(deployed: list[Deployed], out_dir: Path, asr=None, progress: bool = True) -> Path:
    """Write the deployment logs in the moshi-finetune layout; returns the index file.

    Per conversation: `<id>.wav` (stereo, channel 0 model, channel 1 user) and `<id>.json` with
    `alignments` (the model's words from its text stream as SPEAKER_MAIN; with `asr`, the user
    channel's words from that ASR as SPEAKER_1, as a deployment that transcribes its users would
    log them) and `meta`. The folder also gets `index.jsonl` and `scenarios.jsonl`
    (`{"id", "meta"}` per conversation, the ground truth).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    users = transcribe_users(deployed, asr, progress=progress) if asr is not None else None
    index, truth = [], []
    for k, d in enumerate(deployed):
        r = d.rollout
        n = len(r.item.user_wav)
        model_wav = r.model_wav if r.model_wav is not None else np.zeros(n, np.float32)
        write_audio(out_dir / f"{d.id}.wav", merge_channels([model_wav[:n], r.item.user_wav]))
        align = [[w.text, [w.start, w.end], "SPEAKER_MAIN"] for w in r.model_words]
        if users is not None:
            align += [[w.text, [w.start, w.end], "SPEAKER_1"] for w in users[k]]
            align.sort(key=lambda a: a[1][0])
        doc = {"alignments": align, "meta": d.meta}
        atomic_write_text(out_dir / f"{d.id}.json", json.dumps(doc))
        index.append(json.dumps({"path": f"{d.id}.wav", "duration": round(n / 24000, 3)}))
        truth.append(json.dumps({"id": d.id, "meta": d.meta}))
    atomic_write_text(out_dir / SCENARIOS_NAME, "\n".join(truth) + "\n")
    path = out_dir / "index.jsonl"
    atomic_write_text(path, "\n".join(index) + "\n")
    return path

