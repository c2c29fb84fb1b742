"""The scripted flawed policy: writes the two-channel corpus the sandbox's "instruct" model learns from.

Owns what the deliberately flawed assistant does after each simulated user turn and how a whole
conversation is rendered: the user's script (from `users.py`), the model's replies spoken in its own
voice (TTS word timings give the model's timed words, hence its text stream), backchannels, and the
ground truth of every turn in `meta["sandbox"]`. Flaws are drawn per turn with configurable rates:
silence after a question, jumping in at the user's mid-utterance pause, complying with harmful
requests, wrong answers and rudeness. `write_conversation` stores the result in the moshi-finetune
layout (stereo wav with channel 0 = model and channel 1 = user, and a JSON of timed words) that the
ordinary `ingest` reads. It knows nothing about codecs, tokenizers or models.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplexalign.records import Word
from duplexalign.sandbox.scenarios import RUDE, Item
from duplexalign.sandbox.users import (
    MODEL_VOICE,
    Synth,
    UserBehaviour,
    UserTurn,
    Voice,
    backchannel,
    plan_user,
)
from duplexalign.speech.audio import merge_channels, place, write_audio


@dataclass(frozen=True)
class Flaws:
    """Per-turn probabilities of the instruct policy's designed flaws."""

    silent: float = 0.25
    """Stays silent after the user's turn."""
    jump_in: float = 0.20
    """Starts replying in a mid-utterance pause (only for turns that have one)."""
    comply: float = 0.60
    """Complies with a harmful request."""
    wrong: float = 0.30
    """Answers a factual question wrongly."""
    rude: float = 0.10
    """Replies rudely (non-harmful turns)."""
    latency: tuple[float, float] = (0.3, 0.6)
    """Seconds from the user's last word to the reply's onset."""


@dataclass
class Rendered:
    """One rendered conversation.

    Attributes:
        model_words / user_words: timed words per channel (seconds).
        model_wav / user_wav: [S] float32 at 24 kHz, S = duration * 24000.
        meta: JSON-ready ground truth (`{"sandbox": {...}}`).
    """

    model_words: list[Word]
    user_words: list[Word]
    model_wav: np.ndarray
    user_wav: np.ndarray
    meta: dict[str, Any]


def choose_reply(item: Item, flaws: Flaws, rng: random.Random) -> tuple[str, str]:
    """The policy's (content label, reply text) for one item.

    Labels: "refuse", "comply", "good", "wrong", "rude".
    """
    if item.kind == "harmful":
        return ("comply", item.comply_reply) if rng.random() < flaws.comply else ("refuse",
                                                                                    item.good_reply)
    if rng.random() < flaws.rude:
        return "rude", rng.choice(RUDE)
    if item.kind == "qa" and rng.random() < flaws.wrong:
        return "wrong", item.wrong_reply
    return "good", item.good_reply


def _cut_words(words: list[Word], limit: float) -> list[Word]:
    return [w for w in words if w.end <= limit]


def render(items: list[Item], user_voice: Voice, synth: Synth, seed: int, duration: float,
           flaws: Flaws | None = None, behaviour: UserBehaviour | None = None,
           model_voice: Voice = MODEL_VOICE, with_policy: bool = True) -> Rendered:
    """Render one conversation of the flawed policy with a simulated user.

    Args:
        items: the user's requests in order (turns that do not fit in `duration` are dropped).
        user_voice: the user's voice.
        synth: the TTS function.
        seed: the conversation seed (user timing and policy draws).
        duration: conversation length in seconds.
        flaws: flaw rates (defaults to `Flaws()`).
        behaviour: the user's habits.
        model_voice: the model's voice.
        with_policy: False renders the user only (the model channel is silent): the deployment
            input, whose model side the instruct model then produces.

    Returns:
        The rendered conversation; `meta["sandbox"]["turns"]` lists each turn's item, timing and
        (with the policy) what the policy did.
    """
    flaws = flaws or Flaws()
    rng = random.Random(seed)
    turns = plan_user(items, user_voice, synth, rng, duration, behaviour)
    model_clips: list[tuple[float, np.ndarray]] = []
    user_clips: list[tuple[float, np.ndarray]] = []
    model_words: list[Word] = []
    user_words: list[Word] = []
    turn_meta = []
    for i, turn in enumerate(turns):
        user_clips += turn.clips
        user_words += turn.words
        tm = _turn_meta(turn)
        if with_policy:
            nxt = turns[i + 1].start if i + 1 < len(turns) else duration
            act = _act(turn, nxt, duration, flaws, rng, synth, model_voice)
            if act is not None:
                words, clip_start, wav, policy = act
                model_words += words
                model_clips.append((clip_start, wav))
                tm["policy"] = policy
                bc = _backchannel(words, nxt, user_voice, synth, rng, behaviour)
                if bc is not None:
                    user_clips.append((bc[0], bc[1]))
                    user_words += bc[2]
            else:
                tm["policy"] = {"action": "silent", "content": "none", "reply": ""}
        turn_meta.append(tm)
    user_words.sort(key=lambda w: w.start)
    meta = {"sandbox": {"seed": seed, "voice": user_voice, "model_voice": model_voice,
                        "duration": duration, "turns": turn_meta}}
    return Rendered(model_words=model_words, user_words=user_words,
                    model_wav=place(model_clips, duration), user_wav=place(user_clips, duration),
                    meta=meta)


def _turn_meta(turn: UserTurn) -> dict[str, Any]:
    return {"item": turn.item.to_meta(), "start": round(turn.start, 3), "end": round(turn.end, 3),
            "pause": list(turn.pause) if turn.pause else None, "barge_in": turn.barge_in}


def _act(turn: UserTurn, nxt: float, duration: float, flaws: Flaws, rng: random.Random,
         synth: Synth, voice: Voice):
    """What the policy says after `turn`: (words, clip start, wav, policy meta) or None (silent)."""
    if rng.random() < flaws.silent:
        return None
    action = "reply"
    onset = turn.end + rng.uniform(*flaws.latency)
    if turn.pause is not None and rng.random() < flaws.jump_in:
        action = "jump_in"
        onset = turn.pause[0] + rng.uniform(0.2, 0.35)
    content, text = choose_reply(turn.item, flaws, rng)
    speech = synth(text, voice)
    words = [Word(text=w.text, start=round(w.start + onset, 3), end=round(w.end + onset, 3))
             for w in speech.words]
    # yield to the next user turn (barge-in) and to the end of the conversation
    limit = min(duration, nxt + 0.2 if nxt > onset else duration)
    kept = _cut_words(words, limit)
    if not kept:
        return None
    wav = speech.wav[: int(round((kept[-1].end - onset) * speech.sample_rate)) + 240]
    cut = len(kept) < len(words)
    policy = {"action": action, "content": content, "reply": " ".join(w.text for w in kept),
              "onset": round(kept[0].start, 3), "yielded": cut}
    return kept, onset, wav, policy


def _backchannel(words: list[Word], nxt: float, voice: Voice, synth: Synth, rng: random.Random,
                 behaviour: UserBehaviour | None):
    behaviour = behaviour or UserBehaviour()
    if len(words) < 3 or rng.random() >= behaviour.backchannel_prob:
        return None
    sp = backchannel(voice, synth, rng)
    start = words[0].start + behaviour.backchannel_delay
    if start + sp.duration > nxt - 0.2:
        return None
    ws = [Word(text=w.text, start=round(w.start + start, 3), end=round(w.end + start, 3))
          for w in sp.words]
    return start, sp.wav, ws


def write_conversation(out_dir: Path, conv_id: str, r: Rendered) -> dict[str, Any]:
    """Write `conv_id.wav` (stereo: channel 0 model, channel 1 user) and `conv_id.json`
    (`{"alignments": [[word, [start, end], speaker], ...], "meta": {...}}`) under `out_dir`.

    Returns:
        The moshi-finetune index line `{"path": ..., "duration": ...}` (path relative to out_dir).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = merge_channels([r.model_wav, r.user_wav])
    write_audio(out_dir / f"{conv_id}.wav", wav)
    align = [[w.text, [w.start, w.end], "SPEAKER_MAIN"] for w in r.model_words]
    align += [[w.text, [w.start, w.end], "SPEAKER_1"] for w in r.user_words]
    align.sort(key=lambda a: a[1][0])
    doc = {"alignments": align, "meta": r.meta}
    (out_dir / f"{conv_id}.json").write_text(json.dumps(doc))
    return {"path": f"{conv_id}.wav", "duration": round(len(r.model_wav) / 24000, 3)}
