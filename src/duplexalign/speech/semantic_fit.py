"""Fitting the `semantic` codec: teacher units, then a causal student distilled from them.

Owns the recipe behind `SemanticCodec.fit`-style construction: (1) a MelRVQ for the acoustic
codebooks, (2) Whisper tiny.en encoder features of every clip pooled to 12.5 Hz and clustered by
k-means into `units` teacher units (the teacher sees whole windows in both directions), (3) a
causal student (`semantic.CausalUnitNet`) trained by cross-entropy to predict each frame's teacher
unit from log-mel frames up to that frame, on noise-augmented audio so that it keys on speech, not
on the recording. Teacher agreement is measured on clips held out of the student's training.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.speech.melrvq import MelRVQ, augment_noise
from duplexalign.speech.semantic import (
    CausalUnitNet,
    FitStats,
    SemanticCodec,
    StudentConfig,
    WhisperTeacher,
)

log = logging.getLogger(__name__)


def teacher_units(features: list[np.ndarray], units: int, seed: int,
                  niter: int = 25) -> tuple[list[np.ndarray], np.ndarray]:
    """k-means(`units`) of pooled teacher features: one unit sequence [T_i] per clip [T_i, F],
    and the centroids [units, F]."""
    try:
        import faiss
    except ImportError as e:
        raise BackendUnavailable("semantic", "pip install faiss-cpu", str(e)) from e
    data = np.ascontiguousarray(np.concatenate(features), dtype=np.float32)
    if len(data) < units:
        raise ConfigError(f"codec: {units} semantic units need at least that many frames of "
                          f"audio, got {len(data)}")
    km = faiss.Kmeans(data.shape[1], units, niter=niter, seed=seed, max_points_per_centroid=512,
                      verbose=False)
    km.train(data)
    _, idx = km.index.search(data, 1)
    seqs = np.split(idx[:, 0].astype(np.int64), np.cumsum([len(f) for f in features])[:-1])
    return list(seqs), km.centroids.copy()


def nearest_unit(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Teacher units [T] of pooled features [T, F] against k-means `centroids` [U, F]."""
    d = ((features[:, None, :] - centroids[None]) ** 2).sum(-1)
    return d.argmin(1).astype(np.int64)


def train_student(feats: list[np.ndarray], targets: list[np.ndarray], cfg: StudentConfig,
                  steps: int, seed: int, crop: int = 96, batch: int = 32, lr: float = 2e-3,
                  progress: bool = True) -> CausalUnitNet:
    """Train a causal student on (`feats` [T_i, D], `targets`) clips by cross-entropy.

    `targets` are teacher units [T_i], or for a phonetic student (`cfg.phones` > 0) phone ids
    [T_i, cfg.subframes]. Crops of `crop` frames start at random frames; clips shorter than a crop
    are zero-padded on the right and the padding is ignored by the loss (target -100).
    """
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = CausalUnitNet(cfg)
    allf = torch.from_numpy(np.concatenate(feats)).float()
    net.feat_mean.copy_(allf.mean(0))
    net.feat_std.copy_(allf.std(0).clamp_min(1e-3))
    del allf
    x_clips = [torch.from_numpy(f).float() for f in feats]
    y_clips = [torch.from_numpy(t) for t in targets]
    classes = cfg.phones or cfg.units
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    net.train()
    bar = tqdm(range(steps), desc="semantic student", disable=not progress)
    for _ in bar:
        xs = torch.zeros(batch, crop, cfg.input_dim)
        ys = torch.full((batch, crop, *y_clips[0].shape[1:]), -100, dtype=torch.int64)
        for b in range(batch):
            i = int(torch.randint(len(x_clips), (1,), generator=g))
            n = len(x_clips[i])
            s = int(torch.randint(max(1, n - crop + 1), (1,), generator=g))
            piece = x_clips[i][s: s + crop]
            xs[b, : len(piece)] = piece
            ys[b, : len(piece)] = y_clips[i][s: s + crop]
        loss = F.cross_entropy(net(xs).reshape(-1, classes), ys.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return net.eval()


def agreement(net: CausalUnitNet, feats: list[np.ndarray], targets: list[np.ndarray]) -> float:
    """Share of targets the student predicts (`CausalUnitNet.predict`): teacher units [T_i], or
    phones [T_i, subframes] for a phonetic student; clips `feats` [T_i, input_dim]."""
    hit = total = 0
    with torch.no_grad():
        for f, t in zip(feats, targets, strict=True):
            pred = net.predict(torch.from_numpy(f).float()[None])[0].numpy()
            hit += int((pred == t).sum())
            total += t.size
    return hit / max(total, 1)


def heldout_split(n: int, heldout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices of `n` clips: a share `heldout` (at least one clip when there
    are two or more) is held out."""
    n_hold = max(1, int(round(n * heldout))) if n > 1 else 0
    order = rng.permutation(n)
    return order[:n_hold], order[n_hold:]


def fit_stats(net: CausalUnitNet, clean: list[np.ndarray], targets: list[np.ndarray],
              train: np.ndarray, hold: np.ndarray, used_units: int, steps: int) -> FitStats:
    """What a student fit measured: its `agreement` with the targets on (up to 200) training clips
    and on the held-out clips, from clean features `clean` [T_i, input_dim]."""
    def score(idx: np.ndarray) -> float:
        return round(agreement(net, [clean[i] for i in idx], [targets[i] for i in idx]), 4)

    return FitStats(frames=int(sum(len(t) for t in targets)), units=net.cfg.units,
                    teacher_agreement_train=score(train[:200]),
                    teacher_agreement_heldout=score(hold) if len(hold) else float("nan"),
                    used_units=used_units, steps=steps)


def fit_semantic(wavs: list[np.ndarray], units: int = 256, acoustic_codebooks: int = 3,
                 acoustic_card: int = 64, pca_dim: int = 64, student: StudentConfig | None = None,
                 steps: int = 1500, seed: int = 0, heldout: float = 0.1,
                 teacher: WhisperTeacher | None = None, acoustic_wavs: int | None = None,
                 progress: bool = True) -> tuple[SemanticCodec, np.ndarray]:
    """Fit a semantic codec on mono 24 kHz clips `wavs` (each [S_i]).

    Args:
        wavs: training clips; a share `heldout` of them (at least one) measures teacher agreement.
        units: semantic units (codebook 0 size).
        acoustic_codebooks / acoustic_card / pca_dim: the MelRVQ of codebooks 1..K-1.
        student: student network shape (units is overridden by `units`).
        steps: student training steps.
        seed: seed of every random choice.
        teacher: the feature teacher (default: bundled Whisper tiny.en).
        acoustic_wavs: fit the MelRVQ on only the first this many clips (None = all).
        progress: show progress bars.

    Returns:
        The codec, and the teacher's k-means centroids [units, 384] (for probes; not saved).
    """
    t0 = time.time()
    acoustic = MelRVQ.fit(wavs[:acoustic_wavs] if acoustic_wavs else wavs,
                          num_codebooks=acoustic_codebooks, codebook_size=acoustic_card,
                          pca_dim=pca_dim, seed=seed, progress=progress)
    teacher = teacher or WhisperTeacher()
    targets, centroids = teacher_units(teacher.features(wavs), units, seed)
    rng = np.random.default_rng(seed)
    feats = [acoustic.features.frames(augment_noise(w, rng)) for w in wavs]
    hold, train = heldout_split(len(wavs), heldout, rng)
    scfg = StudentConfig(**{**(student.__dict__ if student else {}), "units": units,
                            "input_dim": acoustic.config.stack * acoustic.config.n_mels})
    net = train_student([feats[i] for i in train], [targets[i] for i in train], scfg, steps,
                        seed, progress=progress)
    clean = [acoustic.features.frames(w) for w in wavs]
    stats = fit_stats(net, clean, targets, train, hold,
                      used_units=len(np.unique(np.concatenate(targets))), steps=steps)
    log.info("semantic codec fitted in %.0f s: %s", time.time() - t0, stats)
    codec = SemanticCodec(net, acoustic, {**stats.__dict__, "seconds": round(time.time() - t0, 1)})
    return codec, centroids
