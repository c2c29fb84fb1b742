"""MelRVQ: a 12.5 Hz multi-codebook audio tokenizer fitted on the project's own audio.

Owns a codec with Mimi's shape that needs no pretrained weights: log-mel frames (10 ms hop, 80 bands)
are stacked eight at a time into one 80 ms vector (exactly one `timebase` frame of 1920 samples),
projected by PCA and quantised by residual k-means (faiss) with K codebooks, the first capturing the
coarse spectral class (speech vs silence), later ones refining it. Fitting adds low-level background
noise to the training audio so that silence at an unseen noise floor still lands in silence tokens.
Decoding inverts the chain and recovers a waveform with Griffin-Lim. Saved as one safetensors file
whose metadata holds the JSON config (plus a readable JSON sidecar with fit statistics).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME, samples_to_frames

log = logging.getLogger(__name__)

FORMAT = "duplexalign.melrvq/1"


@dataclass(frozen=True)
class MelRVQConfig:
    """Feature and quantiser settings of a MelRVQ codec (stored with the weights)."""

    n_fft: int = 1024
    hop: int = 240  # 10 ms at 24 kHz; SAMPLES_PER_FRAME / hop mel frames per codec frame
    n_mels: int = 80
    f_max: float = 12_000.0
    pca_dim: int = 128
    num_codebooks: int = 8
    codebook_size: int = 2048
    log_floor: float = 1e-5
    griffin_lim_iters: int = 32

    @property
    def stack(self) -> int:
        """Mel frames per codec frame (8)."""
        return SAMPLES_PER_FRAME // self.hop


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_max: float) -> np.ndarray:
    """Triangular HTK-mel filterbank [n_mels, n_fft // 2 + 1], each filter normalised to unit area."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    fb = np.clip(np.minimum(up, down), 0.0, None)
    fb *= (2.0 / (upper - lower))  # area normalisation
    return fb.astype(np.float32)


class MelFeatures:
    """Log-mel analysis and its approximate inverse (pseudo-inverse filterbank + Griffin-Lim)."""

    def __init__(self, cfg: MelRVQConfig):
        self.cfg = cfg
        self.fb = torch.from_numpy(mel_filterbank(cfg.n_fft, cfg.n_mels, SAMPLE_RATE, cfg.f_max))
        self.window = torch.hann_window(cfg.n_fft)

    def frames(self, wav: np.ndarray) -> np.ndarray:
        """Stacked log-mel vectors [T, stack * n_mels] of mono 24 kHz `wav` [S].

        The waveform is zero-padded to T * 1920 samples with T = samples_to_frames(S), so codec
        frame t covers samples [t * 1920, (t + 1) * 1920) exactly.
        """
        cfg = self.cfg
        t = samples_to_frames(len(wav))
        x = torch.zeros(t * SAMPLES_PER_FRAME)
        x[: len(wav)] = torch.as_tensor(np.asarray(wav, dtype=np.float32))
        spec = torch.stft(x, cfg.n_fft, cfg.hop, window=self.window, center=True,
                          return_complex=True).abs()  # [F, t * stack + 1]
        logmel = torch.log(self.fb @ spec + cfg.log_floor).T[: t * cfg.stack]  # [t * stack, M]
        return logmel.reshape(t, cfg.stack * cfg.n_mels).numpy()

    def invert(self, stacked: np.ndarray, nnls_steps: int = 10) -> np.ndarray:
        """Waveform [T * 1920] from stacked log-mel vectors [T, stack * n_mels]."""
        cfg = self.cfg
        t = stacked.shape[0]
        if t == 0:
            return np.zeros(0, dtype=np.float32)
        mel = torch.exp(torch.as_tensor(stacked, dtype=torch.float32)
                        .reshape(t * cfg.stack, cfg.n_mels).T)  # [M, t * stack]
        mel = (mel - cfg.log_floor).clamp_min(0.0)
        # non-negative least squares by multiplicative updates, from the pseudo-inverse start
        mag = (torch.linalg.pinv(self.fb) @ mel).clamp_min(1e-8)
        fbt_mel = self.fb.T @ mel
        for _ in range(nnls_steps):
            mag = mag * fbt_mel / (self.fb.T @ (self.fb @ mag) + 1e-10)
        mag = torch.cat([mag, mag[:, -1:]], dim=1)  # the STFT had one extra (centre) frame
        return griffin_lim(mag, cfg.n_fft, cfg.hop, self.window, cfg.griffin_lim_iters,
                           length=t * SAMPLES_PER_FRAME)


def griffin_lim(mag: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, iters: int,
                length: int, momentum: float = 0.99, seed: int = 0) -> np.ndarray:
    """Fast Griffin-Lim phase recovery: waveform [length] from magnitudes `mag` [F, N]."""
    gen = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=gen))
    prev = torch.zeros_like(angles)
    for _ in range(iters):
        wav = torch.istft(mag * angles, n_fft, hop, window=window, length=length)
        rebuilt = torch.stft(wav, n_fft, hop, window=window, center=True, return_complex=True)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        prev = rebuilt
        angles = angles / angles.abs().clamp_min(1e-16)
    wav = torch.istft(mag * angles, n_fft, hop, window=window, length=length)
    return wav.numpy().astype(np.float32)


def augment_noise(wav: np.ndarray, rng: np.random.Generator, chunk: float = 1.0,
                  low_dbfs: float = -75.0, high_dbfs: float = -35.0) -> np.ndarray:
    """Add white or brown noise at a random level in [low_dbfs, high_dbfs] to each `chunk`-second
    piece of mono 24 kHz `wav` [S] (brown noise is integrated white noise, rescaled)."""
    out = np.asarray(wav, dtype=np.float32).copy()
    step = int(chunk * SAMPLE_RATE)
    for a in range(0, len(out), step):
        n = min(step, len(out) - a)
        noise = rng.standard_normal(n)
        if rng.random() < 0.5:
            noise = np.cumsum(noise)
            noise -= np.linspace(noise[0], noise[-1], n)  # remove the drift
        rms = float(np.sqrt(np.mean(noise**2))) or 1.0
        level = 10 ** (rng.uniform(low_dbfs, high_dbfs) / 20)
        out[a : a + n] += (noise * level / rms).astype(np.float32)
    return out


class MelRVQ:
    """A fitted MelRVQ codec (see the module docstring).

    Args:
        config: feature and quantiser settings.
        mean: PCA mean [D] with D = stack * n_mels.
        components: PCA projection [d, D], d = pca_dim.
        codebooks: centroids [K, C, d] (K codebooks of C entries).
        stats: fit statistics stored alongside (JSON-serialisable).
    """

    def __init__(self, config: MelRVQConfig, mean: np.ndarray, components: np.ndarray,
                 codebooks: np.ndarray, stats: dict | None = None):
        k, c, d = codebooks.shape
        if (k, c, d) != (config.num_codebooks, config.codebook_size, config.pca_dim):
            raise ConfigError(f"codec: codebooks {codebooks.shape} do not match config "
                              f"{config.num_codebooks}x{config.codebook_size}x{config.pca_dim}")
        self.config = config
        self.mean = np.asarray(mean, dtype=np.float32)
        self.components = np.asarray(components, dtype=np.float32)
        self.codebooks = np.ascontiguousarray(codebooks, dtype=np.float32)
        self.stats = stats or {}
        self.features = MelFeatures(config)
        self._indexes = None

    @property
    def num_codebooks(self) -> int:
        """K, codebooks per frame."""
        return self.config.num_codebooks

    @property
    def cardinality(self) -> int:
        """Entries per codebook."""
        return self.config.codebook_size

    # ---------------------------------------------------------------------------------- fitting

    @classmethod
    def fit(cls, wavs: list[np.ndarray], num_codebooks: int = 8, codebook_size: int = 2048,
            pca_dim: int = 128, seed: int = 0, augment: bool = True, niter: int = 20,
            max_pca_frames: int = 50_000, progress: bool = True) -> MelRVQ:
        """Fit PCA and residual k-means codebooks on mono 24 kHz waveforms.

        Args:
            wavs: training audio, each [S_i] float32 at 24 kHz.
            num_codebooks: K, residual quantisation stages.
            codebook_size: entries per codebook; needs at least this many 80 ms training frames.
            pca_dim: PCA dimension (<= 8 * n_mels).
            seed: seed of the noise augmentation, PCA subsample and k-means.
            augment: add random low-level white/brown noise per 4 s chunk (keep on: without it,
                silence at an unseen noise floor is coded as speech).
            niter: k-means iterations per codebook.
            max_pca_frames: frames subsampled for the PCA.
            progress: show tqdm progress bars.
        """
        try:
            import faiss
        except ImportError as e:
            raise BackendUnavailable("melrvq", "pip install faiss-cpu", str(e)) from e
        from tqdm.auto import tqdm

        cfg = MelRVQConfig(pca_dim=pca_dim, num_codebooks=num_codebooks,
                           codebook_size=codebook_size)
        if pca_dim > cfg.stack * cfg.n_mels:
            raise ConfigError(f"codec.pca_dim must be <= {cfg.stack * cfg.n_mels}, got {pca_dim}")
        rng = np.random.default_rng(seed)
        feats = MelFeatures(cfg)
        blocks = []
        for wav in tqdm(wavs, desc="melrvq features", unit="clip", disable=not progress):
            x = augment_noise(wav, rng) if augment else wav
            blocks.append(feats.frames(x))
        data = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, 1))
        if len(data) < codebook_size:
            raise ConfigError(f"codec.codebook_size={codebook_size} needs at least that many "
                              f"80 ms frames of training audio, got {len(data)} "
                              f"({len(data) * 0.08:.1f} s); add audio or lower codebook_size")
        mean = data.mean(0)
        sub = data[rng.choice(len(data), min(len(data), max_pca_frames), replace=False)]
        centred = torch.from_numpy(sub - mean).double()
        evals, evecs = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
        components = evecs[:, :pca_dim].T.float().numpy()
        kept = float(evals[:pca_dim].sum() / evals.sum())
        resid = np.ascontiguousarray((data - mean) @ components.T, dtype=np.float32)
        books = []
        for q in tqdm(range(num_codebooks), desc="melrvq k-means", unit="codebook",
                      disable=not progress):
            km = faiss.Kmeans(pca_dim, codebook_size, niter=niter, seed=seed + q,
                              max_points_per_centroid=256, verbose=False)
            km.train(resid)
            _, idx = km.index.search(resid, 1)
            resid -= km.centroids[idx[:, 0]]
            books.append(km.centroids.copy())
        stats = {"frames": int(len(data)), "seconds": float(len(data) * 0.08),
                 "pca_variance_kept": kept, "residual_rms": float(np.sqrt((resid**2).mean())),
                 "augment": augment, "seed": seed, "niter": niter}
        log.info("melrvq fitted on %.1f s: PCA keeps %.3f of the variance", stats["seconds"], kept)
        return cls(cfg, mean, components, np.stack(books), stats)

    # ---------------------------------------------------------------------------------- coding

    def _search(self):
        if self._indexes is None:
            import faiss

            self._indexes = []
            for book in self.codebooks:
                index = faiss.IndexFlatL2(book.shape[1])
                index.add(book)
                self._indexes.append(index)
        return self._indexes

    def encode(self, wav: np.ndarray) -> np.ndarray:
        """Codes [K, T] int64 of mono 24 kHz `wav` [S], T = timebase.samples_to_frames(S)."""
        return self.encode_frames(self.features.frames(np.asarray(wav, dtype=np.float32)))

    def encode_frames(self, feats: np.ndarray) -> np.ndarray:
        """Codes [K, T] int64 of stacked log-mel frames `feats` [T, stack * n_mels]."""
        resid = np.ascontiguousarray((feats - self.mean) @ self.components.T, dtype=np.float32)
        codes = np.zeros((self.num_codebooks, len(resid)), dtype=np.int64)
        if len(resid) == 0:
            return codes
        for q, (index, book) in enumerate(zip(self._search(), self.codebooks, strict=True)):
            _, idx = index.search(resid, 1)
            codes[q] = idx[:, 0]
            resid -= book[idx[:, 0]]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Mono 24 kHz waveform [T * 1920] float32 of `codes` [K', T] (K' <= K first codebooks)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] > self.num_codebooks:
            raise ValueError(f"codes must be [K<={self.num_codebooks}, T], got {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.cardinality):
            raise ValueError(f"codes must lie in [0, {self.cardinality})")
        z = np.zeros((codes.shape[1], self.config.pca_dim), dtype=np.float32)
        for q in range(codes.shape[0]):
            z += self.codebooks[q][codes[q]]
        return self.features.invert(z @ self.components + self.mean)

    # ---------------------------------------------------------------------------------- storage

    def save(self, path: str | Path) -> Path:
        """Write the codec to `path` (safetensors, config JSON in its metadata) and a readable
        `<path stem>.json` sidecar with the config and fit statistics. Returns `path`."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "config": asdict(self.config), "stats": self.stats}
        tensors = {"mean": self.mean, "components": self.components, "codebooks": self.codebooks}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=one_key_metadata(meta))
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> MelRVQ:
        """Load a codec written by `save`.

        Raises:
            ConfigError: missing file or not a MelRVQ file (names the `codec.path` option).
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"codec.path: MelRVQ weights not found at {path} "
                              "(fit them with `duplexalign codec fit AUDIO_DIR --out FILE`)")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = with_format(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as e:  # safetensors raises several types for corrupt files
            raise ConfigError(f"codec.path: {path} is not a safetensors file ({e})") from e
        if meta.get("format") != FORMAT:
            raise ConfigError(f"codec.path: {path} is not a MelRVQ codec "
                              f"(format {meta.get('format')!r})")
        info = json.loads(meta["json"])
        return cls(MelRVQConfig(**info["config"]), tensors["mean"], tensors["components"],
                   tensors["codebooks"], info.get("stats"))


def one_key_metadata(meta: dict) -> dict[str, str]:
    """The safetensors metadata of a codec file: `meta` (which names its `format`) as one JSON
    string. safetensors writes several metadata keys in a random order, so a file saved with
    two keys had different bytes from one save to the next; with one key the same codec always
    gives the same file."""
    return {"json": json.dumps(meta)}


def with_format(meta: dict[str, str]) -> dict[str, str]:
    """File metadata with its `format` key, read from the `json` key when the file keeps it there
    (`one_key_metadata`); files written before kept both keys."""
    if "format" not in meta and "json" in meta:
        try:
            fmt = json.loads(meta["json"]).get("format")
        except (ValueError, AttributeError):
            fmt = None
        if isinstance(fmt, str):
            meta = {**meta, "format": fmt}
    return meta
