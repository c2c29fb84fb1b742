"""Speech toolkit speed and quality, measured side by side in one run.

Run: NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 .venv/bin/python bench/speech.py [--codebook-size 256]

Prints speed as x real time (audio seconds / wall seconds; RTF is the inverse) for TTS (espeak, and
Piper if installed), ASR (whisper tiny.en, pocketsphinx forced alignment), VAD (silero onnx and jit)
and codecs (MelRVQ encode/decode, Mimi with random weights at the released size, speed only), then
the quality figures: whisper WER and word-start error on TTS speech, and for a MelRVQ fitted here on
240 spoken LLaMA-Questions (six training voices) the whisper WER of its decoded audio and the
speech/silence accuracy of codebook 0 on 60 other questions spoken by voices it never heard.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from duplexalign.records import Word
from duplexalign.speech.asr import wer
from duplexalign.speech.audio import place
from duplexalign.speech.base import ASR_BACKENDS, TTS_BACKENDS, VAD_BACKENDS
from duplexalign.speech.melrvq import MelRVQ, augment_noise
from duplexalign.speech.voices import USER_VOICES_HELDOUT, USER_VOICES_TRAIN, get_voice
from duplexalign.timebase import FRAME_SECONDS, SAMPLE_RATE

QUESTIONS = Path(__file__).resolve().parents[2] / "shared/data/llama_questions/llama_questions_300.tsv"


def questions() -> list[str]:
    with open(os.environ.get("DUPLEXALIGN_QUESTIONS", QUESTIONS), newline="") as f:
        return [row["Questions"].strip() for row in csv.DictReader(f, delimiter="\t")]


def monologue(voice: str, texts: list[str], seed: int) -> tuple[np.ndarray, list[Word]]:
    """`texts` spoken by `voice` with 0.3-1.5 s silences: (wav [S], true word times)."""
    rng = np.random.default_rng(seed)
    tts = get_voice(voice)
    clips, words, t = [], [], 0.5
    for text in texts:
        sp = tts.synthesize(text)
        clips.append((t, sp.wav))
        words += [w.model_copy(update={"start": w.start + t, "end": w.end + t}) for w in sp.words]
        t += sp.duration + float(rng.uniform(0.3, 1.5))
    return place(clips, t), words


def speech_frames(words: list[Word], n: int) -> np.ndarray:
    """[n] bool: 80 ms frames with at least 20 ms inside a word."""
    cover = np.zeros(n)
    for w in words:
        for f in range(int(w.start / FRAME_SECONDS), min(n, int(w.end / FRAME_SECONDS) + 1)):
            cover[f] += max(0.0, min(w.end, (f + 1) * FRAME_SECONDS) - max(w.start, f * FRAME_SECONDS))
    return cover > 0.02


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def row(what: str, audio_s: float, wall_s: float, note: str = "") -> None:
    print(f"| {what} | {audio_s:.1f} s | {wall_s:.3f} s | {audio_s / wall_s:,.1f}x | "
          f"{wall_s / audio_s:.4f} | {note} |")


def tts_reproducibility_cost(texts: list[str], rounds: int = 3) -> None:
    """Wall time per utterance of espeak with a pristine library state per utterance (the default:
    one forked process each) against synthesis inside this process (history-dependent output),
    interleaved round by round so that load on a shared machine hits both alike."""
    pristine = TTS_BACKENDS.get("espeak")(voice="en-us+m3", rate=165)
    in_process = TTS_BACKENDS.get("espeak")(voice="en-us+m3", rate=165, reproducible=False)
    pristine.synthesize("warm up")
    in_process.synthesize("warm up")
    walls: dict[str, float] = {"pristine": 0.0, "in_process": 0.0}
    for _ in range(rounds):
        for name, tts in (("pristine", pristine), ("in_process", in_process)):
            walls[name] += timed(lambda t=tts: [t.synthesize(q) for q in texts])[1]
    n = rounds * len(texts)
    a, b = walls["pristine"] / n * 1e3, walls["in_process"] / n * 1e3
    print(f"| TTS espeak-ng per utterance, {n} utterances: reproducible (pristine state, one fork "
          f"each) {a:.1f} ms vs in-process {b:.1f} ms | | | {a / b:.2f}x the time | | "
          f"+{a - b:.1f} ms per utterance |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-codebooks", type=int, default=8)
    ap.add_argument("--codebook-size", type=int, default=256)
    ap.add_argument("--pca-dim", type=int, default=128)
    ap.add_argument("--tts-only", action="store_true",
                    help="only the TTS rows (incl. the cost of reproducible espeak synthesis)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    qs = questions()
    train_q, test_q = qs[:240], qs[240:300]

    print("| what | audio | wall | x real time | RTF | note |\n|---|---|---|---|---|---|")
    # TTS ------------------------------------------------------------------------------------
    espeak = TTS_BACKENDS.get("espeak")(voice="en-us+m3", rate=165)
    sp, wall = timed(lambda: [espeak.synthesize(q) for q in test_q[:20]])
    row("TTS espeak-ng (model voice), 20 questions", sum(s.duration for s in sp), wall)
    tts_reproducibility_cost(test_q[:20])
    if importlib.util.find_spec("piper"):
        piper = TTS_BACKENDS.get("piper")()
        sp, wall = timed(lambda: [piper.synthesize(q) for q in test_q[:10]])
        row("TTS piper joe, 10 questions", sum(s.duration for s in sp), wall)
    if args.tts_only:
        return

    # ASR / VAD on a held-out-voice monologue ------------------------------------------------
    wav, truth = monologue("model", test_q[:20], seed=1)
    dur = len(wav) / SAMPLE_RATE
    whisper = ASR_BACKENDS.get("whisper")(cpu_threads=1)
    words, wall = timed(whisper.transcribe, wav, SAMPLE_RATE)
    asr_wer = wer(" ".join(test_q[:20]), " ".join(w.text for w in words))
    row("ASR whisper tiny.en int8, 1 thread, vad_filter", dur, wall, f"WER {asr_wer:.3f}")
    starts = _start_errors(truth, words)
    aligner = ASR_BACKENDS.get("pocketsphinx")()
    for voice in ("user_0", "model_piper" if importlib.util.find_spec("piper") else "model"):
        sents = [get_voice(voice).synthesize(q) for q in test_q[:20]]
        aligned, wall = timed(lambda s=sents: [aligner.align(x.wav, SAMPLE_RATE, q)
                                               for x, q in zip(s, test_q[:20], strict=True)])
        ok = [(x, al) for x, al in zip(sents, aligned, strict=True) if al]
        err = [abs(a.start - b.start) for x, al in ok for a, b in zip(x.words, al, strict=True)]
        row(f"forced alignment pocketsphinx ({voice}), 20 questions",
            sum(x.duration for x in sents), wall,
            f"aligned {len(ok)}/20; median start error {np.median(err) if err else float('nan'):.3f} s")
    for onnx in (True, False):
        vad = VAD_BACKENDS.get("silero")(onnx=onnx)
        _, wall = timed(vad.segments, wav, SAMPLE_RATE)
        row(f"VAD silero {'onnx' if onnx else 'jit'}", dur, wall)

    # MelRVQ ---------------------------------------------------------------------------------
    train = [monologue(v, train_q[i::6], seed=10 + i) for i, v in enumerate(USER_VOICES_TRAIN)]
    train_s = sum(len(w) for w, _ in train) / SAMPLE_RATE
    codec, fit_wall = timed(lambda: MelRVQ.fit([w for w, _ in train], args.num_codebooks,
                                               args.codebook_size, args.pca_dim, progress=False))
    row(f"MelRVQ fit {args.num_codebooks}x{args.codebook_size}, PCA {args.pca_dim}", train_s,
        fit_wall, f"PCA keeps {codec.stats['pca_variance_kept']:.3f}")
    votes = np.zeros((codec.cardinality, 2))
    for i, (w, ws) in enumerate(train):
        c = codec.encode(augment_noise(w, np.random.default_rng(100 + i)))
        np.add.at(votes, (c[0], speech_frames(ws, c.shape[1]).astype(int)), 1)
    is_speech = votes[:, 1] > votes[:, 0]
    quality = []
    for j, voice in enumerate((*USER_VOICES_HELDOUT, "model")):
        texts = test_q[j * 20:(j + 1) * 20]
        w, ws = monologue(voice, texts, seed=50 + j)
        noisy = (w + np.random.default_rng(j).normal(0, 10 ** (-55 / 20), len(w))).astype(np.float32)
        codes, enc_wall = timed(codec.encode, noisy)
        acc = float(np.mean(is_speech[codes[0]] == speech_frames(ws, codes.shape[1])))
        decoded, dec_wall = timed(codec.decode, codes)
        half = codec.decode(codes[: codec.num_codebooks // 2])
        true_mel = codec.features.invert(codec.features.frames(noisy))
        ref = " ".join(texts)
        scores = [wer(ref, " ".join(x.text for x in whisper.transcribe(a, SAMPLE_RATE)))
                  for a in (noisy, true_mel, decoded, half)]
        quality.append((voice, acc, *scores))
        d = len(w) / SAMPLE_RATE
        row(f"MelRVQ encode ({voice})", d, enc_wall)
        row(f"MelRVQ decode, Griffin-Lim 32 it. ({voice})", d, dec_wall)

    # Mimi, released architecture with random weights (speed only) ---------------------------
    from duplexalign.speech.codec import MimiCodec

    mimi = MimiCodec.from_config(None)
    clip = wav[: 10 * SAMPLE_RATE]
    codes, wall = timed(mimi.encode, clip)
    row("Mimi encode (random weights, 79 M params)", 10.0, wall)
    _, wall = timed(mimi.decode, codes)
    row("Mimi decode (random weights)", 10.0, wall)

    print(f"\nwhisper on TTS ({dur:.0f} s, model voice): WER {asr_wer:.3f}, word-start error "
          f"median {np.median(starts):.3f} s, mean {np.mean(starts):.3f} s over {len(starts)} words")
    print(f"\nMelRVQ {args.num_codebooks}x{args.codebook_size} fitted on {train_s:.0f} s "
          f"({len(USER_VOICES_TRAIN)} voices) in {fit_wall:.1f} s; held-out voices, noise at -55 dBFS:")
    k2 = args.num_codebooks // 2
    print(f"| voice | cb0 speech/silence acc | WER original | WER Griffin-Lim of true mel | "
          f"WER decoded {args.num_codebooks} cb | WER decoded {k2} cb |\n|---|---|---|---|---|---|")
    for voice, acc, *s in quality:
        print(f"| {voice} | {acc:.3f} | " + " | ".join(f"{x:.3f}" for x in s) + " |")


def _start_errors(truth: list[Word], hyp: list[Word]) -> np.ndarray:
    import difflib

    from duplexalign.speech.asr import normalize_text

    a, b = [normalize_text(w.text) for w in truth], [normalize_text(w.text) for w in hyp]
    errs = []
    for blk in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        errs += [abs(truth[blk.a + k].start - hyp[blk.b + k].start) for k in range(blk.size)]
    return np.array(errs)


if __name__ == "__main__":
    main()
