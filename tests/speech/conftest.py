"""Session fixtures of the speech tests: real engines loaded once (whisper, silero, a small MelRVQ
fitted on the training user voices)."""

from __future__ import annotations

import numpy as np
import pytest

from duplexalign.speech.voices import USER_VOICES_TRAIN
from speech.helpers import monologue


@pytest.fixture(scope="session")
def whisper():
    """The bundled Whisper tiny.en, loaded once per session."""
    from duplexalign.speech.base import ASR_BACKENDS

    return ASR_BACKENDS.get("whisper")(cpu_threads=1)


@pytest.fixture(scope="session")
def train_monologues():
    """(wav, words) of every training user voice speaking the 20 sentences."""
    return [monologue(v, seed=i) for i, v in enumerate(USER_VOICES_TRAIN)]


@pytest.fixture(scope="session")
def small_melrvq(train_monologues):
    """An 8 x 256 MelRVQ fitted on the training user voices only (a few seconds)."""
    from duplexalign.speech.melrvq import MelRVQ

    return MelRVQ.fit([w for w, _ in train_monologues], num_codebooks=8, codebook_size=256,
                      pca_dim=128, seed=0, progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
