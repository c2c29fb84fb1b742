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


@pytest.fixture(scope="session")
def ray_cluster():
    """A two-node Ray cluster on 127.0.0.1 (one CPU per node, no dashboard, small object stores),
    connected to this process; stopped at the end of the session. Skips without Ray."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_worker_niceness", "0")  # workers at the test's priority
    mb = 1 << 20
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 * mb})
    c.add_node(num_cpus=1, object_store_memory=80 * mb)
    ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
