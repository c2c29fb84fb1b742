"""Simulated users of the sandbox: voices, and the timed script of what a user says in a conversation.

Owns the user side of a sandbox conversation: a pool of distinct TTS voices (the named user voices of
`speech.voices`: espeak-ng variants with their own rate and pitch; some held out for evaluation), and `plan_user`, which turns scenario items
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
from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.records import Word
from duplexalign.sandbox.scenarios import Item
from duplexalign.speech.base import Speech
from duplexalign.speech.voices import USER_VOICES_HELDOUT, USER_VOICES_TRAIN

Voice = str
"""A named voice of `speech.voices` (e.g. "model", "user_3")."""

TRAIN_VOICES: tuple[Voice, ...] = USER_VOICES_TRAIN
HELDOUT_VOICES: tuple[Voice, ...] = USER_VOICES_HELDOUT
MODEL_VOICE: Voice = "model"
BACKCHANNELS = ("mm hm", "okay", "right")

Synth = Callable[[str, Voice], Speech]
"""Speak `text` in `voice`: returns 24 kHz audio and word timings relative to the clip start."""


@dataclass(frozen=True)
class UserBehaviour:
    """Probabilities and ranges (seconds) of the simulated user's habits."""

    first_start: tuple[float, float] = (0.2, 0.6)
    pause_prob: float = 0.35
    pause_len: tuple[float, float] = (0.6, 1.0)
    pause_filler: str | None = "um"
    """Hesitation word said just before a mid-utterance pause, as people hold the floor while they
    think; it is the cue a listener has that the turn is not over. None makes bare pauses."""
    wait_after_turn: tuple[float, float] = (2.3, 3.0)
    barge_in_prob: float = 0.1
    barge_in_wait: tuple[float, float] = (1.0, 1.4)
    backchannel_prob: float = 0.1
    backchannel_delay: float = 0.4
    """Seconds after the model's reply onset at which a backchanneling user says "mm hm"."""


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
    halves separately, so the words before and after keep their TTS timings; the first half ends
    with `behaviour.pause_filler` when set (the pause is the silence after it).
    """
    words = item.text.split()
    pause = None
    if len(words) >= 4 and rng.random() < behaviour.pause_prob:
        cut = rng.randint(2, len(words) - 2)
        head = words[:cut] + ([behaviour.pause_filler] if behaviour.pause_filler else [])
        a = synth(" ".join(head), voice)
        b = synth(" ".join(words[cut:]), voice)
        gap = rng.uniform(*behaviour.pause_len)
        a_end = start + a.duration
        b_start = a_end + gap
        ws = _shift(a.words, start) + _shift(b.words, b_start)
        pause = (round(ws[len(head) - 1].end, 3), round(ws[len(head)].start, 3))
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



def default_synth() -> Synth:
    """The default `Synth`: the project's named voices (`speech.voices`, espeak-ng, cached)."""
    from duplexalign.speech.voices import get_voice

    def synth(text: str, voice: Voice) -> Speech:
        return get_voice(voice).synthesize(text)

    return synth


class VoiceJitter(StageConfig):
    """How much each simulated user's voice varies around its named voice (0 = not at all)."""

    rate: float = Field(0.0, ge=0, lt=1)
    """Speaking rate drawn uniformly within +- this fraction of the voice's own."""
    pitch: int = Field(0, ge=0, le=50)
    """Pitch (espeak's 0-99 scale) drawn uniformly within +- this many steps of the voice's own."""
    variants: list[str] = []
    """espeak voice variants ("m5", "klatt2") drawn from, with the voice's own, per conversation
    (keep the held-out voices' variants, f3 and m7, out of it)."""


def jittered_voice(voice: str, jitter: VoiceJitter, seed: int) -> str:
    """`voice`, or a `speech.voices.varied` copy of it drawn from `jitter` with `seed` (the same
    seed gives the same voice)."""
    from duplexalign.speech.voices import VOICES, varied

    if not jitter.rate and not jitter.pitch and not jitter.variants:
        return voice
    rng = random.Random(seed * 7_919 + 17)
    opts = VOICES[voice].options
    rate = round(opts.get("rate", 175) * (1 + rng.uniform(-jitter.rate, jitter.rate)))
    pitch = opts.get("pitch", 50) + rng.randint(-jitter.pitch, jitter.pitch)
    variant = rng.choice([None, *jitter.variants]) if jitter.variants else None
    return varied(voice, rate, pitch, variant)


def derived_voices(voices: tuple[Voice, ...], jitter: VoiceJitter, per_voice: int, seed: int = 0
                   ) -> tuple[Voice, ...]:
    """`per_voice` varied copies of each of `voices` drawn from `jitter` (seeded): more speakers
    for a corpus or a deployment, never a held-out voice."""
    return tuple(jittered_voice(v, jitter, seed * 1_000 + i * 100 + k)
                 for i, v in enumerate(voices) for k in range(per_voice))
