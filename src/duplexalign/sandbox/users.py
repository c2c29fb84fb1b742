"""Simulated users of the sandbox: voices, and the timed script of what a user says in a conversation.

Owns the user side of a sandbox conversation: a pool of distinct TTS voices (espeak-ng variants with
their own rate and pitch; some held out for evaluation), and `plan_user`, which turns scenario items
into timed user turns with realistic behaviour: a mid-utterance pause in some turns, a turn-end
silence before the next turn, an occasional barge-in (the next turn starts while the model would
still be talking) and backchannels ("mm hm") during the model's reply. A user's script is fixed in
advance (the same script is used for the training corpus and for deployment), so a conversation is
reproducible from its seed. Speech comes from the project's TTS backend (`speech.tts`) through
`Synth`; this module does not know about the model or codes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from duplexalign.records import Word
from duplexalign.sandbox.scenarios import Item
from duplexalign.speech.base import Speech


@dataclass(frozen=True)
class Voice:
    """A TTS voice: espeak-ng voice name (variant after '+'), rate in words/min and pitch 0-100."""

    name: str
    voice: str
    rate: int = 170
    pitch: int = 50


TRAIN_VOICES: tuple[Voice, ...] = (
    Voice("u-f1", "en-us+f1", 165, 60),
    Voice("u-f3", "en-us+f3", 180, 55),
    Voice("u-m2", "en-us+m2", 160, 40),
    Voice("u-m4", "en-us+m4", 175, 45),
    Voice("u-gb", "en-gb-x-rp+m1", 170, 50),
    Voice("u-f4", "en-us+f4", 185, 65),
)
HELDOUT_VOICES: tuple[Voice, ...] = (
    Voice("u-f2-held", "en-us+f2", 170, 58),
    Voice("u-m6-held", "en-us+m6", 165, 42),
)
MODEL_VOICE = Voice("model", "en-us+m3", 190, 35)
BACKCHANNELS = ("mm hm", "okay", "right")

Synth = Callable[[str, Voice], Speech]
"""Speak `text` in `voice`: returns 24 kHz audio and word timings relative to the clip start."""


@dataclass(frozen=True)
class UserBehaviour:
    """Probabilities and ranges (seconds) of the simulated user's habits."""

    first_start: tuple[float, float] = (0.2, 0.6)
    pause_prob: float = 0.35
    pause_len: tuple[float, float] = (0.6, 1.0)
    wait_after_turn: tuple[float, float] = (2.3, 3.0)
    barge_in_prob: float = 0.1
    barge_in_wait: tuple[float, float] = (1.0, 1.4)
    backchannel_prob: float = 0.1


@dataclass
class UserTurn:
    """One timed user turn.

    Attributes:
        item: the scenario item asked.
        start / end: seconds in the conversation.
        words: the turn's timed words (absolute seconds).
        pause: (start, end) of a mid-utterance pause, or None.
        barge_in: True when this turn was scheduled to start before a typical reply would end.
        clips: (start, wav [S]) pieces of audio making up the turn.
    """

    item: Item
    start: float
    end: float
    words: list[Word]
    pause: tuple[float, float] | None = None
    barge_in: bool = False
    clips: list[tuple[float, np.ndarray]] = field(default_factory=list)


def _shift(words: list[Word], dt: float) -> list[Word]:
    return [Word(text=w.text, start=round(w.start + dt, 3), end=round(w.end + dt, 3))
            for w in words]


def speak_turn(item: Item, start: float, voice: Voice, synth: Synth, rng: random.Random,
               behaviour: UserBehaviour) -> UserTurn:
    """Synthesise one user turn starting at `start`, possibly with a mid-utterance pause.

    The pause is inserted after word 2..n-2 of utterances of at least 4 words by speaking the two
    halves separately, so the words before and after keep their TTS timings.
    """
    words = item.text.split()
    pause = None
    if len(words) >= 4 and rng.random() < behaviour.pause_prob:
        cut = rng.randint(2, len(words) - 2)
        a = synth(" ".join(words[:cut]), voice)
        b = synth(" ".join(words[cut:]), voice)
        gap = rng.uniform(*behaviour.pause_len)
        a_end = start + a.duration
        b_start = a_end + gap
        ws = _shift(a.words, start) + _shift(b.words, b_start)
        pause = (round(ws[cut - 1].end, 3), round(ws[cut].start, 3))
        clips = [(start, a.wav), (b_start, b.wav)]
        end = b_start + b.duration
    else:
        s = synth(item.text, voice)
        ws = _shift(s.words, start)
        clips = [(start, s.wav)]
        end = start + s.duration
    end_w = ws[-1].end if ws else end
    return UserTurn(item=item, start=ws[0].start if ws else start, end=end_w, words=ws,
                    pause=pause, clips=clips)


def plan_user(items: list[Item], voice: Voice, synth: Synth, rng: random.Random,
              duration: float, behaviour: UserBehaviour | None = None) -> list[UserTurn]:
    """The user's timed turns for one conversation; turns that would not end before
    `duration - 1.5` s are dropped (the model needs room to answer).

    Args:
        items: what the user asks, in order.
        voice: the user's voice.
        synth: the TTS function.
        rng: the conversation's random generator.
        duration: conversation length in seconds.
        behaviour: habits (defaults to `UserBehaviour()`).

    Returns:
        At least one turn (the first is always kept).
    """
    behaviour = behaviour or UserBehaviour()
    t = rng.uniform(*behaviour.first_start)
    turns: list[UserTurn] = []
    for i, item in enumerate(items):
        barge = False
        if i > 0:
            barge = rng.random() < behaviour.barge_in_prob
            wait = behaviour.barge_in_wait if barge else behaviour.wait_after_turn
            t = turns[-1].end + rng.uniform(*wait)
        turn = speak_turn(item, t, voice, synth, rng, behaviour)
        turn.barge_in = barge
        if i > 0 and turn.end > duration - 1.5:
            break
        turns.append(turn)
    return turns


def backchannel(voice: Voice, synth: Synth, rng: random.Random) -> Speech:
    """A short backchannel ("mm hm", "okay", "right") in the user's voice."""
    return synth(rng.choice(BACKCHANNELS), voice)


def espeak_synth() -> Synth:
    """The default `Synth`: the project's espeak-ng backend, one engine per voice, results cached
    per (text, voice) so repeated phrases are synthesised once."""
    from duplexalign.speech.base import TTS_BACKENDS

    engines: dict[Voice, object] = {}
    cache: dict[tuple[str, Voice], Speech] = {}

    def synth(text: str, voice: Voice) -> Speech:
        key = (text, voice)
        if key not in cache:
            if voice not in engines:
                engines[voice] = TTS_BACKENDS.get("espeak")(voice=voice.voice, rate=voice.rate,
                                                            pitch=voice.pitch, name=voice.name)
            cache[key] = engines[voice].synthesize(text)
        return cache[key]

    return synth
