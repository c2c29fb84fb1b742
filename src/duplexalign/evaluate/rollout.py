"""Batched streaming full-duplex rollouts with moshi's `LMGen` against recorded user audio codes.

Owns how a model is run live: each item's user codes `[K, T]` are fed frame by frame (the first frame
twice, moshi.md A7, so that `model(codes)` on the result re-scores exactly the sampled text logits),
items are batched (shorter ones padded with their last frame; outputs are cut back), and the sampling
settings and seed are recorded with every rollout. It turns the model's text stream into timed words
through the tokenizer and `timebase`, optionally decodes the model's audio codes with a codec, and
writes a two-channel wav (channel 0 model, channel 1 user). It knows nothing about tasks or scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from duplexalign.records import Word
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID
from duplexalign.timebase import SAMPLES_PER_FRAME, frame_to_seconds

log = logging.getLogger(__name__)

WORD_BOUNDARY = "\u2581"
"""SentencePiece's word-start marker."""


class SamplingConfig(BaseModel):
    """Sampling settings of a rollout (recorded with every result).

    Attributes:
        use_sampling: sample (True) or take the argmax (False).
        temp: temperature of the audio codebooks.
        temp_text: temperature of the text stream. The sandbox probe found that 0.7 inflates the
            no-response rate: evaluate timing calibration at 1.0 and report deployment settings apart.
        top_k: top-k of the audio codebooks (0 = no limit).
        top_k_text: top-k of the text stream (0 = no limit).
        seed: torch seed set before each batch (batch i uses seed + i).
        batch_size: items rolled out together.
    """

    model_config = ConfigDict(extra="forbid")

    use_sampling: bool = True
    temp: float = Field(0.8, ge=0)
    temp_text: float = Field(0.7, ge=0)
    top_k: int = Field(250, ge=0)
    top_k_text: int = Field(25, ge=0)
    seed: int = 0
    batch_size: int = Field(16, ge=1)


@dataclass
class UserItem:
    """One user stream to roll out against.

    Attributes:
        id: stable sample id.
        user_codes: user audio codes [K, T] int64 at 12.5 Hz (T frames = the rollout length).
        user_words: the user's timed words (seconds), used by timing and QA windows.
        meta: task data (gold answers, labels, annotated pauses, ...), carried to the results.
        user_wav: the user waveform [S] at 24 kHz, if known (written to the two-channel wav).
    """

    id: str
    user_codes: np.ndarray
    user_words: list[Word] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    user_wav: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.user_codes.shape[-1])


@dataclass
class Rollout:
    """The result of rolling out one item.

    Attributes:
        item: the input item.
        text_tokens: the model's text stream [T] int64.
        model_codes: the model's audio codes [K, T] int64 (K = the model's dep_q).
        model_words: timed words decoded from `text_tokens`.
        text_logprobs: log-prob of each sampled text token under the untempered logits [T].
        sampling: the sampling settings and the batch seed actually used.
        model_wav: decoded model audio [T * 1920] float32 at 24 kHz, when a codec was given.
    """

    item: UserItem
    text_tokens: np.ndarray
    model_codes: np.ndarray
    model_words: list[Word]
    text_logprobs: np.ndarray
    sampling: dict[str, Any]
    model_wav: np.ndarray | None = None

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def duration(self) -> float:
        return frame_to_seconds(int(self.text_tokens.shape[-1]))

    def codes(self) -> torch.Tensor:
        """The full token tensor [1 + 2K, T]: text, model audio, user audio (training layout)."""
        k = self.model_codes.shape[0]
        user = self.item.user_codes[:k]
        return torch.from_numpy(np.concatenate(
            [self.text_tokens[None], self.model_codes, user], axis=0).astype(np.int64))

    def num_text_tokens(self) -> int:
        """Non-pad text tokens (neither PAD nor EPAD) in the whole stream."""
        t = self.text_tokens
        return int(((t != TEXT_PAD_ID) & (t != TEXT_EPAD_ID)).sum())


def piece_lookup(tokenizer: Any) -> Callable[[int], str]:
    """A function id -> piece string for a SentencePiece-like tokenizer.

    Accepts a `sentencepiece.SentencePieceProcessor` or any object with `id_to_piece`, or one that
    wraps such a processor as `.sp` / `.processor`.
    """
    for obj in (tokenizer, getattr(tokenizer, "sp", None), getattr(tokenizer, "processor", None)):
        if obj is not None and hasattr(obj, "id_to_piece"):
            return lambda i, _o=obj: _o.id_to_piece(int(i))
    raise TypeError(f"tokenizer {type(tokenizer).__name__} has no id_to_piece")


def text_stream_words(tokens: Sequence[int], tokenizer: Any, start_frame: int = 0) -> list[Word]:
    """Timed words of a text stream.

    A piece starting with the SentencePiece boundary marker opens a new word at the start time of its
    frame; other pieces extend the current word. A word ends at the end of the frame of its last
    token. PAD, EPAD and ids the tokenizer cannot map are skipped.

    Args:
        tokens: the text stream [T] (one id per 12.5 Hz frame).
        tokenizer: SentencePiece-like tokenizer (see `piece_lookup`).
        start_frame: frame index of `tokens[0]` in the conversation.
    """
    piece = piece_lookup(tokenizer)
    vocab = _vocab_size(tokenizer)
    words: list[Word] = []
    cur_text, cur_start, cur_last = "", -1, -1
    for i, tok in enumerate(tokens):
        tok = int(tok)
        if tok in (TEXT_PAD_ID, TEXT_EPAD_ID) or tok < 0 or (vocab and tok >= vocab):
            continue
        p = piece(tok)
        f = start_frame + i
        if p.startswith(WORD_BOUNDARY) or cur_start < 0:
            if cur_text:
                words.append(_word(cur_text, cur_start, cur_last))
            cur_text, cur_start = p.lstrip(WORD_BOUNDARY), f
        else:
            cur_text += p
        cur_last = f
    if cur_text:
        words.append(_word(cur_text, cur_start, cur_last))
    return words


def _word(text: str, first: int, last: int) -> Word:
    return Word(text=text, start=frame_to_seconds(first), end=frame_to_seconds(last + 1))


def _vocab_size(tokenizer: Any) -> int | None:
    for obj in (tokenizer, getattr(tokenizer, "sp", None), getattr(tokenizer, "processor", None)):
        if obj is not None and hasattr(obj, "get_piece_size"):
            return int(obj.get_piece_size())
    return None


@torch.no_grad()
def generate(model: torch.nn.Module, user_codes: torch.Tensor, sampling: SamplingConfig,
             seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll one batch out with `LMGen`.

    Args:
        model: a moshi `LMModel` (switched to eval mode here).
        user_codes: user audio codes [B, K_user, T] int64 (rows beyond the model's user codebooks are
            ignored by LMGen).
        sampling: sampling settings.
        seed: torch seed set before the first step.

    Returns:
        `gen` [B, 1 + dep_q, T] (text then the model's audio codes, undelayed, frame-aligned with
        `user_codes`) and `logprobs` [B, T], the log-softmax of the untempered text logits at the
        sampled text token of each frame.
    """
    from moshi.models.lm import LMGen

    model.eval()
    device = next(model.parameters()).device
    user_codes = user_codes.to(device)
    b, _, t = user_codes.shape
    max_delay = max(model.delays)
    logits: list[torch.Tensor] = []
    gen = LMGen(model, use_sampling=sampling.use_sampling, temp=sampling.temp,
                temp_text=sampling.temp_text, top_k=sampling.top_k, top_k_text=sampling.top_k_text,
                on_text_logits_hook=lambda x: logits.append(x[:, 0, 0].float().log_softmax(-1)))
    torch.manual_seed(seed)
    # The first user frame is fed twice: LMGen replaces every stream by initial tokens at step 0.
    order = [0, *range(t)] + [t - 1] * (max_delay - 1)
    outs: list[torch.Tensor] = []
    with gen.streaming(b):
        for f in order:
            out = gen.step(user_codes[:, :, f:f + 1])
            if out is not None:
                outs.append(out[:, :, 0])
    codes = torch.stack(outs[:t], dim=-1)
    lp = torch.stack(logits[:t], dim=1)  # [B, T, V]
    sampled = lp.gather(-1, codes[:, 0, :, None].clamp(min=0))[..., 0]
    return codes.cpu(), sampled.cpu()


def rollout(model: torch.nn.Module, items: Sequence[UserItem], tokenizer: Any,
            sampling: SamplingConfig | None = None, codec: Any | None = None,
            progress: bool = True) -> list[Rollout]:
    """Roll `items` out in batches and decode the model's streams.

    Args:
        model: a moshi `LMModel`.
        items: user streams; items of different lengths are batched together (padded with their last
            frame, which cannot affect earlier frames of a causal model).
        tokenizer: SentencePiece-like tokenizer of the model's text stream.
        sampling: sampling settings (defaults when None).
        codec: if given, the model's audio codes are decoded to 24 kHz audio (`codec.decode([K, T])`).
        progress: show a progress bar.

    Returns:
        One `Rollout` per item, in input order.
    """
    sampling = sampling or SamplingConfig()
    results: list[Rollout] = []
    batches = range(0, len(items), sampling.batch_size)
    for bi, start in enumerate(tqdm(batches, desc="rollout", disable=not progress)):
        results += rollout_batch(model, items[start:start + sampling.batch_size], bi, tokenizer,
                                 sampling, codec)
    return results


def rollout_batch(model: torch.nn.Module, batch: Sequence[UserItem], index: int, tokenizer: Any,
                  sampling: SamplingConfig, codec: Any | None = None) -> list[Rollout]:
    """Roll out batch number `index` of `rollout` (its seed is `sampling.seed + index`, so a
    batch gives the same rollouts wherever and in whatever order it runs).

    Args:
        model: a moshi `LMModel`.
        batch: at most `sampling.batch_size` user streams.
        index: the batch's number in the whole rollout.
        tokenizer: SentencePiece-like tokenizer of the model's text stream.
        sampling: sampling settings.
        codec: decodes the model's audio codes when given.

    Returns:
        One `Rollout` per item of `batch`, in order.
    """
    n_user = model.num_codebooks - model.dep_q - 1
    batch = list(batch)
    results: list[Rollout] = []
    bi = index
    t_max = max(it.num_frames for it in batch)
    user = torch.stack([_pad_frames(torch.as_tensor(it.user_codes[:n_user], dtype=torch.long),
                                    t_max) for it in batch])
    seed = sampling.seed + bi
    gen, lp = generate(model, user, sampling, seed)
    for j, it in enumerate(batch):
        t = it.num_frames
        text = gen[j, 0, :t].numpy().astype(np.int64)
        audio = gen[j, 1:, :t].numpy().astype(np.int64)
        wav = codec.decode(audio) if codec is not None else None
        results.append(Rollout(
            item=it, text_tokens=text, model_codes=audio,
            model_words=text_stream_words(text, tokenizer), text_logprobs=lp[j, :t].numpy(),
            sampling={**sampling.model_dump(), "batch_seed": seed, "batch_index": bi},
            model_wav=None if wav is None else np.asarray(wav, dtype=np.float32)))
    return results


def _pad_frames(codes: torch.Tensor, t: int) -> torch.Tensor:
    """Pad `codes` [K, T0] to [K, t] by repeating the last frame."""
    if codes.shape[-1] >= t:
        return codes[:, :t]
    return torch.cat([codes, codes[:, -1:].expand(-1, t - codes.shape[-1])], dim=-1)


def write_stereo(path: str | Path, r: Rollout) -> Path | None:
    """Write the two-channel wav of a rollout (channel 0 model, channel 1 user), 24 kHz.

    Returns None (and writes nothing) when neither channel's audio is known.
    """
    from duplexalign.speech.audio import merge_channels, write_audio

    if r.model_wav is None and r.item.user_wav is None:
        return None
    n = r.text_tokens.shape[-1] * SAMPLES_PER_FRAME
    model = r.model_wav if r.model_wav is not None else np.zeros(n, np.float32)
    user = r.item.user_wav if r.item.user_wav is not None else np.zeros(n, np.float32)
    stereo = merge_channels([model[:n], user[:n]])
    return write_audio(path, stereo)
