"""Named voices: the model's voice, an alternative model voice and a bank of simulated users.

Owns the presets every stage refers to by name (`get_voice("model")`, `"user_3"`), so that pairs,
the sandbox and evaluation speak with the same voices. All defaults use espeak-ng (always installed);
`model_piper` uses the optional Piper joe voice. User voices vary variant, accent, rate and pitch; a
few are held out (`USER_VOICES_HELDOUT`) so evaluation hears users the model never trained on.
Synthesis results are cached in memory per voice (LRU), since dialogues repeat short phrases.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from duplexalign.errors import ConfigError
from duplexalign.speech.base import TTS_BACKENDS, Speech


@dataclass(frozen=True)
class VoicePreset:
    """A TTS backend name plus the keyword arguments of its factory."""

    backend: str
    options: dict[str, Any] = field(default_factory=dict)


VOICES: dict[str, VoicePreset] = {
    "model": VoicePreset("espeak", {"voice": "en-us+m3", "rate": 165, "pitch": 45}),
    "model_alt": VoicePreset("espeak", {"voice": "en-gb-x-rp+f2", "rate": 155, "pitch": 60}),
    "model_piper": VoicePreset("piper", {}),
    "user_0": VoicePreset("espeak", {"voice": "en-us+f2", "rate": 150, "pitch": 55}),
    "user_1": VoicePreset("espeak", {"voice": "en-us", "rate": 170, "pitch": 40}),
    "user_2": VoicePreset("espeak", {"voice": "en-us+klatt4", "rate": 155, "pitch": 50}),
    "user_3": VoicePreset("espeak", {"voice": "en-gb-x-rp+m3", "rate": 160, "pitch": 35}),
    "user_4": VoicePreset("espeak", {"voice": "en-us+f4", "rate": 145, "pitch": 65}),
    "user_5": VoicePreset("espeak", {"voice": "en-us+m1", "rate": 175, "pitch": 45}),
    "user_6": VoicePreset("espeak", {"voice": "en-gb-x-rp+f3", "rate": 150, "pitch": 60}),
    "user_7": VoicePreset("espeak", {"voice": "en-us+m7", "rate": 160, "pitch": 30}),
}
"""Every named voice."""

USER_VOICES_TRAIN: tuple[str, ...] = ("user_0", "user_1", "user_2", "user_3", "user_4", "user_5")
"""User voices for training data and simulated training users."""
USER_VOICES_HELDOUT: tuple[str, ...] = ("user_6", "user_7")
"""User voices reserved for evaluation."""
USER_VOICES: tuple[str, ...] = USER_VOICES_TRAIN + USER_VOICES_HELDOUT


class CachedVoice:
    """A TTS wrapper with an in-memory LRU cache of `synthesize` results.

    Args:
        name: voice name (becomes `.name`).
        tts: the wrapped backend.
        max_items: cache size in utterances.
    """

    def __init__(self, name: str, tts: Any, max_items: int = 512):
        self.name = name
        self.tts = tts
        self.max_items = max_items
        self._cache: OrderedDict[str, Speech] = OrderedDict()
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> Speech:
        """Speak `text` (cached); returns 24 kHz audio [S] and word timings."""
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        speech = self.tts.synthesize(text)
        speech.wav.setflags(write=False)  # shared between callers: never mutate in place
        with self._lock:
            self._cache[text] = speech
            while len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        return speech


_LOADED: dict[str, CachedVoice] = {}
_LOAD_LOCK = threading.Lock()


def voice_names() -> list[str]:
    """Names accepted by `get_voice`."""
    return sorted(VOICES)


def varied(name: str, rate: int, pitch: int, variant: str | None = None) -> str:
    """The name of espeak voice `name` spoken at words-per-minute `rate` and pitch `pitch`
    (0-99) instead of its own, and with espeak voice variant `variant` ("m5", "klatt2"; None keeps
    its own): `"user_2~r170p38"`, `"user_2~r170p38+m5"`, accepted by `get_voice` (used to vary
    simulated users' voices around the named ones)."""
    if name not in VOICES or VOICES[name].backend != "espeak":
        raise ConfigError(f"voice: {name!r} is not a named espeak voice, so it cannot be varied")
    if variant is not None and not re.fullmatch(r"[A-Za-z0-9]+", variant):
        raise ConfigError(f"voice: bad espeak variant {variant!r}")
    return (f"{name}~r{int(rate)}p{min(99, max(0, int(pitch)))}"
            + (f"+{variant}" if variant else ""))


def _preset(name: str) -> VoicePreset:
    """The preset of a named voice or of a `varied` one."""
    base, _, spec = name.partition("~")
    m = re.fullmatch(r"r(\d+)p(\d+)(?:\+([A-Za-z0-9]+))?", spec) if spec else None
    if base not in VOICES or (spec and (m is None or VOICES[base].backend != "espeak")):
        raise ConfigError(f"voice: unknown voice {name!r} (known: {', '.join(voice_names())}, or "
                          "NAME~rRATEpPITCH of an espeak one)")
    preset = VOICES[base]
    if m is None:
        return preset
    opts = {**preset.options, "rate": int(m[1]), "pitch": int(m[2])}
    if m[3]:
        opts["voice"] = f"{opts['voice'].split('+')[0]}+{m[3]}"
    return VoicePreset(preset.backend, opts)


def get_voice(name: str) -> CachedVoice:
    """The TTS for a named voice, or a `varied` one (built once per process, synthesis cached).

    Raises:
        ConfigError: unknown name (lists the known ones).
        BackendUnavailable: the voice's backend is not installed (e.g. `model_piper`).
    """
    preset = _preset(name)
    with _LOAD_LOCK:
        if name not in _LOADED:
            tts = TTS_BACKENDS.get(preset.backend)(**preset.options, name=name)
            _LOADED[name] = CachedVoice(name, tts)
        return _LOADED[name]
