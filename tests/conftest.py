"""Shared test setup: offline, single-threaded torch, and the path of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DUPLEXALIGN_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The evaluation data folder (../shared/data next to the checkout)."""
    p = SHARED / "data"
    if not p.exists():
        raise RuntimeError(f"shared data not found at {p}; set DUPLEXALIGN_SHARED")
    return p
