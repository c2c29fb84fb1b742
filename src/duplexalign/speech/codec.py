"""Codec backends behind one protocol: `melrvq` and `semantic` (ours, fitted locally) and `mimi`
(moshi's, from local weights).

Owns loading a codec by registry name and adapting it to `speech.base.Codec`: `encode(wav [S]) ->
codes [K, T]` int64 at 12.5 Hz with T = `timebase.samples_to_frames(S)`, and `decode(codes [K, T]) ->
wav [T * 1920]`. Nothing downloads: all take a local `path`. The MelRVQ model itself lives in
`speech/melrvq.py`, the semantic one (causal speech units + MelRVQ) in `speech/semantic.py`;
`load_codec_file` opens either by the format recorded in the file.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.speech.base import CODECS
from duplexalign.speech.melrvq import MelRVQ
from duplexalign.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME, samples_to_frames

_MIMI_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"


@CODECS.register("melrvq")
def load_melrvq(path: str | Path | None = None) -> MelRVQ:
    """Load a fitted MelRVQ codec from `path` (a `.safetensors` written by `MelRVQ.save`).

    Raises:
        ConfigError: `path` unset or missing (names the `codec.path` option).
    """
    if path is None:
        raise ConfigError("codec.path: the melrvq codec needs the file written by "
                          "`duplexalign codec fit AUDIO_DIR --out FILE`")
    return MelRVQ.load(path)


@CODECS.register("semantic")
def load_semantic(path: str | Path | None = None):
    """Load a fitted semantic codec from `path` (a `.safetensors` written by `SemanticCodec.save`).

    Raises:
        ConfigError: `path` unset or missing (names the `codec.path` option).
    """
    from duplexalign.speech.semantic import SemanticCodec

    if path is None:
        raise ConfigError("codec.path: the semantic codec needs the file written by "
                          "`duplexalign codec fit AUDIO_DIR --semantic-units 256 --out FILE`")
    return SemanticCodec.load(path)


def codec_kind(path: str | Path) -> str:
    """Registry name (`melrvq` or `semantic`) of a codec file written by this project."""
    from duplexalign.speech import melrvq, semantic

    fmt = semantic.file_metadata(path).get("format")
    kinds = {melrvq.FORMAT: "melrvq", semantic.FORMAT: "semantic"}
    if fmt not in kinds:
        raise ConfigError(f"codec.path: {path} is neither a MelRVQ nor a semantic codec "
                          f"(format {fmt!r})")
    return kinds[fmt]


def load_codec_file(path: str | Path):
    """Load a MelRVQ or semantic codec file, whichever `path` holds."""
    if not Path(path).is_file():
        raise ConfigError(f"codec.path: codec not found at {path}")
    return CODECS.get(codec_kind(path))(path=path)


class MimiCodec:
    """moshi's Mimi (SEANet + transformer + split RVQ) adapted to the `Codec` protocol.

    Args:
        model: a `moshi.models.compression.MimiModel` in eval mode.
    """

    def __init__(self, model: Any):
        self.model = model

    @property
    def num_codebooks(self) -> int:
        """Active codebooks K."""
        return int(self.model.num_codebooks)

    @property
    def cardinality(self) -> int:
        """Entries per codebook (2048)."""
        return int(self.model.cardinality)

    @classmethod
    def from_config(cls, mimi_config: dict | None = None, path: str | Path | None = None,
                    num_codebooks: int = 8) -> MimiCodec:
        """Build Mimi from a moshi config dict (None = the released one), loading `path` if given.

        Without `path` the weights are random: only for shape tests (a random Mimi emits nearly
        constant codes).
        """
        os.environ.setdefault("NO_TORCH_COMPILE", "1")
        try:
            from moshi.models import loaders
        except ImportError as e:
            raise BackendUnavailable(
                "mimi", "pip install --no-deps moshi==0.2.13 (next to torch; see README)", str(e)
            ) from e
        cfg = copy.deepcopy(mimi_config) if mimi_config is not None else None
        model = loaders.get_mimi(str(path) if path is not None else None, cfg, device="cpu",
                                 num_codebooks=num_codebooks)
        return cls(model)

    def encode(self, wav: np.ndarray) -> np.ndarray:
        """Codes [K, T] int64 of mono 24 kHz `wav` [S], T = timebase.samples_to_frames(S)."""
        import torch

        wav = np.asarray(wav, dtype=np.float32)
        t = samples_to_frames(len(wav))
        x = torch.zeros(1, 1, t * SAMPLES_PER_FRAME)
        x[0, 0, : len(wav)] = torch.from_numpy(wav)
        with torch.no_grad():
            codes = self.model.encode(x)  # [1, K, T]
        return codes[0, :, :t].to(torch.int64).numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Mono 24 kHz waveform [T * 1920] float32 of `codes` [K, T]."""
        import torch

        c = torch.as_tensor(np.asarray(codes), dtype=torch.int64)[None]  # [1, K, T]
        with torch.no_grad():
            wav = self.model.decode(c)  # [1, 1, T * 1920]
        return wav[0, 0].numpy().astype(np.float32)


@CODECS.register("mimi")
def load_mimi(path: str | Path | None = None, num_codebooks: int = 8) -> MimiCodec:
    """Load Mimi weights from a local file or a folder holding the released checkpoint.

    Args:
        path: the Mimi safetensors (`tokenizer-e351c8d8-checkpoint125.safetensors` from
            kyutai/moshiko-pytorch-bf16) or its folder. Never downloaded.
        num_codebooks: active codebooks (Moshi uses 8).

    Raises:
        ConfigError: `path` unset or not found (names the `codec.path` option).
    """
    if path is None:
        raise ConfigError("codec.path: the mimi codec needs a local weights file "
                          f"({_MIMI_FILE} from kyutai/moshiko-pytorch-bf16); nothing is downloaded")
    p = Path(path)
    if p.is_dir():
        p = p / _MIMI_FILE
    if not p.is_file():
        raise ConfigError(f"codec.path: Mimi weights not found at {p}")
    return MimiCodec.from_config(None, p, num_codebooks)



def fit_melrvq_dir(audio_dir: str | Path, out: str | Path, num_codebooks: int = 8,
                   codebook_size: int = 2048, pca_dim: int = 128, seed: int = 0,
                   niter: int = 20, augment: bool = True, progress: bool = True,
                   semantic_units: int = 0, semantic_steps: int = 800):
    """Fit a MelRVQ codec (or, with `semantic_units` > 0, a semantic codec whose codebook 0 holds
    that many causal speech units and whose other `num_codebooks - 1` are MelRVQ) on every audio
    file under `audio_dir` and save it to `out`.

    Every channel of a multi-channel file is a separate training signal (in a dialogue recording
    they are different speakers). Files that cannot be read are skipped with a warning.

    Raises:
        ConfigError: no readable audio, or too little for `codebook_size`.
    """
    import logging

    from tqdm.auto import tqdm

    from duplexalign.errors import BadInput
    from duplexalign.speech.audio import list_audio_files, read_audio, split_channels

    log = logging.getLogger(__name__)
    wavs: list[np.ndarray] = []
    for path in tqdm(list_audio_files(audio_dir), desc="reading audio", unit="file",
                     disable=not progress):
        try:
            wavs += split_channels(read_audio(path, SAMPLE_RATE))
        except BadInput as e:
            log.warning("skipping %s: %s", path, e)
    if not wavs:
        raise ConfigError(f"codec fit: no readable audio under {audio_dir}")
    if semantic_units:
        from duplexalign.speech.semantic_fit import fit_semantic

        if num_codebooks < 2:
            raise ConfigError("codec fit: a semantic codec needs num_codebooks >= 2 "
                              "(codebook 0 semantic, the rest acoustic)")
        codec, _ = fit_semantic(wavs, units=semantic_units, acoustic_codebooks=num_codebooks - 1,
                                acoustic_card=codebook_size, pca_dim=pca_dim, seed=seed,
                                steps=semantic_steps, progress=progress)
    else:
        codec = MelRVQ.fit(wavs, num_codebooks=num_codebooks, codebook_size=codebook_size,
                           pca_dim=pca_dim, seed=seed, niter=niter, augment=augment,
                           progress=progress)
    codec.save(out)
    return codec
