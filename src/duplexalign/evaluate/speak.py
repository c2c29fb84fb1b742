"""Turning scripted user prompts into user streams: TTS, placement on a timeline, codec encoding.

Owns the `Prompt` (what the user says: turns made of chunks, with pauses inside a turn and gaps
between turns) and how it becomes a `UserItem`: each chunk is synthesised by the user voice, placed
after a lead-in silence, the waveform is encoded by the codec, and the annotated pauses and turn ends
that the timing metrics need are derived from the TTS word timings. Knows nothing about the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from duplexalign.evaluate.rollout import UserItem
from duplexalign.records import Word
from duplexalign.speech.audio import place
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME, num_frames


@dataclass
class Prompt:
    """What a scripted user says.

    Attributes:
        id: stable sample id.
        turns: the user's turns, each a list of chunks spoken with `pause` seconds between them.
        meta: task data carried to the results (gold answers, labels, ...).
        pause: silence between chunks of one turn (a mid-turn pause), seconds.
        gaps: silence after each turn but the last (time for the model to answer), seconds; one value
            is repeated for every turn.
        lead: silence before the first turn, seconds.
        tail: silence after the last turn, seconds.
        max_duration: the stream is cut at this length (seconds), None = no cut.
    """

    id: str
    turns: list[list[str]]
    meta: dict[str, Any] = field(default_factory=dict)
    pause: float = 1.5
    gaps: float | list[float] = 6.0
    lead: float = 0.5
    tail: float = 8.0
    max_duration: float | None = None

    @classmethod
    def question(cls, id: str, text: str, tail: float, **meta: Any) -> Prompt:
        """A single-turn, single-chunk prompt (spoken QA, safety)."""
        return cls(id=id, turns=[[text.strip()]], meta=dict(meta), tail=tail)


def speak(prompt: Prompt, tts: Any) -> tuple[np.ndarray, list[Word], dict[str, Any]]:
    """Synthesise `prompt` with `tts` on one timeline.

    Returns:
        The user waveform [S] float32 at 24 kHz (S a whole number of frames), the user's timed words,
        and the annotations `{"pauses": [(s, e)], "turn_ends": [t], "turn_starts": [t],
        "duration": seconds}`.
    """
    gaps = prompt.gaps if isinstance(prompt.gaps, list) else [prompt.gaps] * len(prompt.turns)
    t = prompt.lead
    clips: list[tuple[float, np.ndarray]] = []
    words: list[Word] = []
    pauses: list[tuple[float, float]] = []
    ends: list[float] = []
    starts: list[float] = []
    for ti, turn in enumerate(prompt.turns):
        starts.append(t)
        for ci, chunk in enumerate(turn):
            sp = tts.synthesize(chunk)
            wav = np.asarray(sp.wav, dtype=np.float32)
            if sp.sample_rate != SAMPLE_RATE:
                from duplexalign.speech.audio import resample

                wav = resample(wav, sp.sample_rate, SAMPLE_RATE)
            clips.append((t, wav))
            spoken_end = t + (sp.words[-1].end if sp.words else len(wav) / SAMPLE_RATE)
            words += [Word(text=w.text, start=t + w.start, end=t + w.end) for w in sp.words]
            if ci < len(turn) - 1:
                pauses.append((spoken_end, spoken_end + prompt.pause))
                t = spoken_end + prompt.pause
            else:
                ends.append(spoken_end)
                t = spoken_end + (gaps[ti] if ti < len(prompt.turns) - 1 else prompt.tail)
    duration = t if prompt.max_duration is None else min(t, prompt.max_duration)
    frames = num_frames(duration)
    wav = place(clips, frames * SAMPLES_PER_FRAME / SAMPLE_RATE)
    words = [w for w in words if w.start < duration]
    return wav, words, {"pauses": [p for p in pauses if p[1] <= duration],
                        "turn_ends": [e for e in ends if e <= duration],
                        "turn_starts": [s for s in starts if s < duration],
                        "duration": frames * SAMPLES_PER_FRAME / SAMPLE_RATE}


def user_items(prompts: Sequence[Prompt], tts: Any, codec: Any, progress: bool = True
               ) -> list[UserItem]:
    """Speak and encode every prompt.

    Args:
        prompts: the scripted users.
        tts: the user voice (`synthesize(text) -> Speech`).
        codec: the model's codec (`encode(wav [S]) -> codes [K, T]`).
        progress: show a progress bar.

    Returns:
        One `UserItem` per prompt; its `meta` holds the prompt's meta, the annotations of `speak`, the
        user turns' text and the voice name.
    """
    out = []
    for p in tqdm(prompts, desc="user speech", disable=not progress):
        wav, words, ann = speak(p, tts)
        codes = np.asarray(codec.encode(wav), dtype=np.int64)
        frames = num_frames(ann["duration"])
        codes = codes[:, :frames]
        meta = {**p.meta, **ann, "user_turns": [" ".join(t) for t in p.turns],
                "voice": getattr(tts, "name", type(tts).__name__)}
        out.append(UserItem(id=p.id, user_codes=codes, user_words=words, meta=meta, user_wav=wav))
    return out
