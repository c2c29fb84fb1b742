"""Fitting the `semantic` codec's phonetic student: speech units distilled from the TTS's phone events.

Owns the second recipe for codebook 0 (the first, Whisper-distilled units, is `semantic_fit.py`).
The TTS knows which phone it is speaking at every instant (espeak-ng PHONEME events), so the
student can learn phones directly instead of imitating k-means labels of another encoder: (1) speak
sentences in several voices and lay them end to end with random gaps, with a phone label every
10 ms mel frame; (2) train the causal student (`semantic.CausalUnitNet` with `phones` > 0) to
predict the phone at `subframes` points of each 80 ms frame from log-mel frames up to that frame,
on noise-augmented audio; (3) cluster its phone posteriors by k-means into `units` units, which
then mostly name the one or two phones a frame spans, whoever speaks them. Phone accuracy is
measured on clips held out of the student's training (`semantic_fit.agreement`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.speech.base import Speech
from duplexalign.speech.melrvq import MelRVQ, augment_noise
from duplexalign.speech.semantic import CausalUnitNet, SemanticCodec, StudentConfig
from duplexalign.speech.semantic_fit import fit_stats, heldout_split, train_student
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

PAUSE = "_"
MEL_HOP_SECONDS = 0.01
"""Labels are given per 10 ms mel frame (MelRVQ's hop)."""


def phone_name(raw: str) -> str:
    """espeak phone name without stress marks; every pause is `PAUSE`."""
    name = raw.replace("'", "").replace(",", "")
    return PAUSE if not name or name.startswith("_") else name


@dataclass
class PhoneClip:
    """A clip of spoken sentences: mono 24 kHz `wav` [S] and phone names per 10 ms (`labels`,
    length S / 240)."""

    wav: np.ndarray
    labels: list[str]


def phone_clips(texts: Sequence[str], voices: Sequence[str], synth: Callable[[str, str], Speech],
                count: int, seconds: float, seed: int,
                gap: tuple[float, float] = (0.1, 1.2)) -> list[PhoneClip]:
    """`count` clips of `seconds` each (whole frames): random `texts` spoken by `voices` in turn
    (one voice per clip), separated by random silent gaps.

    Raises:
        ConfigError: the TTS gives no phone timings (only espeak voices do).
    """
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * SAMPLE_RATE / SAMPLES_PER_FRAME))
    n = frames * SAMPLES_PER_FRAME
    hop = int(round(MEL_HOP_SECONDS * SAMPLE_RATE))
    clips = []
    for c in range(count):
        voice = voices[c % len(voices)]
        wav = np.zeros(n, np.float32)
        labels = [PAUSE] * (n // hop)
        pos = int(rng.uniform(*gap) * SAMPLE_RATE)
        while pos < n:
            sp = synth(str(texts[int(rng.integers(len(texts)))]), voice)
            if not sp.phones:
                raise ConfigError(f"codec: voice {voice!r} gives no phone timings; the phonetic "
                                  "student needs espeak voices")
            piece = sp.wav[: n - pos]
            wav[pos: pos + len(piece)] = piece
            for name, a, b in sp.phones:
                lo, hi = (pos + int(a * SAMPLE_RATE)) // hop, (pos + int(b * SAMPLE_RATE)) // hop
                labels[lo: min(hi, len(labels))] = [phone_name(name)] * max(0, min(hi, len(labels)) - lo)
            pos += len(sp.wav) + int(rng.uniform(*gap) * SAMPLE_RATE)
        clips.append(PhoneClip(wav, labels))
    return clips


def subframe_targets(ids: np.ndarray, stack: int, subframes: int) -> np.ndarray:
    """Phone ids [T, subframes] at the centres of `subframes` equal parts of each frame, from ids
    per mel frame [T * stack] (e.g. stack 8, subframes 4: mel frames 1, 3, 5, 7 of each frame)."""
    step = stack // subframes
    t = len(ids) // stack
    return ids[: t * stack].reshape(t, stack)[:, step // 2:: step][:, :subframes]


def fit_centroids(net: CausalUnitNet, feats: list[np.ndarray], units: int, seed: int) -> np.ndarray:
    """k-means(`units`) centroids [units, subframes * phones] of the student's phone posteriors
    over clips `feats` (each [T_i, input_dim])."""
    try:
        import faiss
    except ImportError as e:
        raise BackendUnavailable("semantic", "pip install faiss-cpu", str(e)) from e
    with torch.no_grad():
        post = np.concatenate([net.posteriors(torch.from_numpy(f).float()[None])[0].numpy()
                               for f in feats])
    if len(post) < units:
        raise ConfigError(f"codec: {units} semantic units need at least that many frames of "
                          f"audio, got {len(post)}")
    km = faiss.Kmeans(post.shape[1], units, niter=25, seed=seed, max_points_per_centroid=512,
                      verbose=False)
    km.train(np.ascontiguousarray(post, dtype=np.float32))
    return km.centroids.copy()


def fit_phonetic(clips: list[PhoneClip], acoustic_wavs: list[np.ndarray], units: int = 256,
                 acoustic_codebooks: int = 3, acoustic_card: int = 64, pca_dim: int = 64,
                 student: StudentConfig | None = None, steps: int = 1500, seed: int = 0,
                 heldout: float = 0.1, progress: bool = True) -> tuple[SemanticCodec, list[str]]:
    """Fit a semantic codec whose units come from a phonetic student.

    Args:
        clips: labelled speech (`phone_clips`); a share `heldout` (at least one) measures phone
            accuracy and is left out of training.
        acoustic_wavs: mono 24 kHz clips the MelRVQ of codebooks 1..K-1 is fitted on.
        units: semantic units (codebook 0 size).
        acoustic_codebooks / acoustic_card / pca_dim: the MelRVQ's shape.
        student: student network shape (units, phones and input size are set here).
        steps: student training steps.
        seed: seed of every random choice.
        progress: show progress bars.

    Returns:
        The codec, and the phone inventory (index = the student's phone id).
    """
    t0 = time.time()
    acoustic = MelRVQ.fit(acoustic_wavs, num_codebooks=acoustic_codebooks,
                          codebook_size=acoustic_card, pca_dim=pca_dim, seed=seed,
                          progress=progress)
    inventory = [PAUSE] + sorted({p for c in clips for p in c.labels} - {PAUSE})
    index = {p: i for i, p in enumerate(inventory)}
    base = student.__dict__ if student else {}
    scfg = StudentConfig(**{**base, "units": units, "phones": len(inventory),
                            "input_dim": acoustic.config.stack * acoustic.config.n_mels})
    rng = np.random.default_rng(seed)
    targets = [subframe_targets(np.array([index[p] for p in c.labels]), acoustic.config.stack,
                                scfg.subframes) for c in clips]
    feats = [acoustic.features.frames(augment_noise(c.wav, rng)) for c in clips]
    hold, train = heldout_split(len(clips), heldout, rng)
    net = train_student([feats[i] for i in train], [targets[i] for i in train], scfg, steps,
                        seed, progress=progress)
    clean = [acoustic.features.frames(c.wav) for c in clips]
    net.centroids.copy_(torch.from_numpy(fit_centroids(net, [clean[i] for i in train], units, seed)))
    used = len(np.unique(np.concatenate([net.units_of(torch.from_numpy(clean[i]).float()[None])[0]
                                         .numpy() for i in train[:200]])))
    stats = fit_stats(net, clean, targets, train, hold, used_units=used, steps=steps)
    log.info("phonetic semantic codec fitted in %.0f s: %s", time.time() - t0, stats)
    codec = SemanticCodec(net, acoustic, {**stats.__dict__, "teacher": "phones",
                                          "phones": inventory,
                                          "seconds": round(time.time() - t0, 1)})
    return codec, inventory
