"""Window geometry and variant audio: turns a chosen clip (and the logged reply) into a pair.

Owns the invariant of ARCHITECTURE.md section 3. The window `[ws, we)` is frame-aligned (12.5 Hz). It
starts at least one frame before the first word of either variant, so the EPAD a word puts in the frame
before its first token stays inside the window, and never on a frame where a logged model word starts.
It ends `tail` seconds after the later variant. Context = `[cs, ws)` with `we - cs <= max_context_frames`.
Both variants' window audio have exactly `(we - ws) * 1920` samples: the rejected one is the logged model
channel (or a re-spoken clip for voice transfer); the chosen one is silence, plus the tails of logged
words that started in the context and run into the window (they belong to the shared context), plus the
chosen clip. Model words outside the window and the user stream are untouched, so they are shared.
"""

from __future__ import annotations

import numpy as np

from duplexalign.errors import BadInput
from duplexalign.pairs.base import Built, Candidate, Clip, PairEnv
from duplexalign.records import PreferencePair, ReplyVariant, Word
from duplexalign.timebase import (
    SAMPLES_PER_FRAME,
    frame_to_seconds,
    num_frames,
    seconds_to_frame,
    seconds_to_samples,
)

ASSEMBLY_META = ("anchor", "carried_words", "logged_words_in_window")
"""The diagnostics `assemble` writes into `PreferencePair.meta` (recomputed on reassembly)."""


def audio_path(pair_id: str, side: str) -> str:
    """Run-relative path of a variant's window audio."""
    return f"pairs/audio/{pair_id}/{side}.wav"


def _slice(wav: np.ndarray, a: int, b: int) -> np.ndarray:
    """Samples [a, b) of `wav` [S], zero-padded past its end."""
    out = np.zeros(b - a, dtype=np.float32)
    if a < len(wav):
        seg = wav[a:min(b, len(wav))]
        out[:len(seg)] = seg
    return out


def _mix(buf: np.ndarray, clip: Clip, ws_sample: int) -> None:
    a = seconds_to_samples(clip.start) - ws_sample
    if a < 0:
        raise BadInput("clip_before_window", f"clip starts {-a} samples before the window")
    b = min(len(buf), a + len(clip.wav))
    if b > a:
        buf[a:b] += clip.wav[:b - a]


def window_start_frame(firsts: list[int], logged: list[Word]) -> int:
    """The window's first frame: one before the earliest variant frame in `firsts`, moved earlier
    while a logged model word starts on it (so the context never holds a lone EPAD of a window
    word)."""
    ws = max(0, min(firsts) - 1)
    starts = {seconds_to_frame(w.start) for w in logged}
    while ws > 0 and ws in starts:
        ws -= 1
    return ws


def assemble(cand: Candidate, env: PairEnv, chosen: Clip, anchor: float, rejected_end: float,
             rejected: Clip | None = None, voice: str = "", meta: dict | None = None) -> Built:
    """Build the pair record and both window waveforms.

    Args:
        cand: the candidate.
        env: the conversation's environment.
        chosen: the chosen reply placed in time.
        anchor: earliest time the window must cover (the rejected reply's onset, or the start of the
            silence).
        rejected_end: end of the rejected reply (or of the silence) in seconds.
        rejected: a re-spoken rejected clip (voice transfer); None keeps the logged model channel.
        voice: the voice that spoke the chosen reply.
        meta: diagnostics for the record's `meta` (read by people, never by a stage).

    Raises:
        BadInput: "empty_chosen" (no words), "window_too_long" (the window alone exceeds the
            context bound).
    """
    cfg = env.cfg
    logged = env.conversation.words.model
    if not chosen.words:
        raise BadInput("empty_chosen", "the chosen reply has no words")
    firsts = [seconds_to_frame(anchor), seconds_to_frame(chosen.start)]
    firsts += [seconds_to_frame(w.start) for w in chosen.words]
    if rejected is not None:
        firsts += [seconds_to_frame(rejected.start)] + [seconds_to_frame(w.start)
                                                        for w in rejected.words]
    ws = window_start_frame(firsts, logged)
    ends = [chosen.end, max(w.end for w in chosen.words), rejected_end]
    if rejected is not None:
        ends.append(rejected.end)
    we = num_frames(max(ends) + cfg.tail)
    if we - ws > cfg.max_context_frames:
        raise BadInput("window_too_long", f"{we - ws} frames > {cfg.max_context_frames}")
    cs = max(0, we - cfg.max_context_frames)
    ws_s, we_s = ws * SAMPLES_PER_FRAME, we * SAMPLES_PER_FRAME

    logged_wav = env.model_wav
    # Tails of context words that run into the window belong to the shared context.
    carry = np.zeros(we_s - ws_s, dtype=np.float32)
    n_carry = 0
    for w in logged:
        if seconds_to_frame(w.start) < ws and w.end > frame_to_seconds(ws):
            b = min(we_s, seconds_to_samples(w.end))
            if b > ws_s:
                carry[:b - ws_s] = _slice(logged_wav, ws_s, b)
                n_carry += 1
    chosen_wav = carry.copy()
    _mix(chosen_wav, chosen, ws_s)
    in_window = [w for w in logged if ws <= seconds_to_frame(w.start) < we]
    if rejected is None:
        rejected_wav = _slice(logged_wav, ws_s, we_s)
        rejected_words = in_window
        source = "logged"
    else:
        rejected_wav = carry.copy()
        _mix(rejected_wav, rejected, ws_s)
        rejected_words = [w for w in rejected.words if seconds_to_frame(w.start) < we]
        source = "tts"
    pair = PreferencePair(
        id=cand.id, conversation_id=env.conversation.id, reply_id=cand.reply_id,
        window=(frame_to_seconds(ws), frame_to_seconds(we)), context_start=frame_to_seconds(cs),
        chosen=ReplyVariant(words=list(chosen.words), audio=audio_path(cand.id, "chosen")),
        rejected=ReplyVariant(words=rejected_words, audio=audio_path(cand.id, "rejected")),
        issue_ids=[i.id for i in cand.issues], strategy=cand.strategy, category=cand.category,
        voice=voice, rejected_source=source,
        meta={"anchor": round(anchor, 3), "carried_words": n_carry,
              "logged_words_in_window": len(in_window), **(meta or {})})
    return Built(pair, chosen_wav, rejected_wav, chosen, anchor)


def logged_clip(env: PairEnv, words: list[Word]) -> Clip:
    """The logged audio and words of a reply, as a clip starting at its first word."""
    if not words:
        raise BadInput("reply_not_found", "no logged model words in the issue's span")
    a, b = words[0].start, max(w.end for w in words)
    wav = _slice(env.model_wav, seconds_to_samples(a), seconds_to_samples(b))
    return Clip(start=a, wav=wav, words=list(words))


def shifted(clip: Clip, start: float) -> Clip:
    """`clip` moved to begin at `start` (words shifted by the same amount)."""
    d = start - clip.start
    return Clip(start=start, wav=clip.wav,
                words=[Word(text=w.text, start=w.start + d, end=w.end + d) for w in clip.words])
