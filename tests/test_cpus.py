"""CPU claims of engine workers: each claimant pins itself to CPUs no other one holds, a claim
that cannot be met pins nothing, and a CPU comes free when its holder exits. Each claimant is its
own process (as the Ray actors are), holding its claim until its stdin closes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from duplexalign.cpus import claim_cpus
from duplexalign.engine import EngineConfig, pinned_cpus

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")

CLAIMANT = """
import json, os, sys
from duplexalign.cpus import claim_cpus
claim = claim_cpus(int(sys.argv[1]), sys.argv[2])
print(json.dumps({"cpus": claim,
                  "affinity": sorted(os.sched_getaffinity(0))}), flush=True)
sys.stdin.read()
"""


class Claimant:
    """A process that claims `k` CPUs in `lock_dir` and holds them until `exit`."""

    def __init__(self, k: int, lock_dir):
        self.p = subprocess.Popen([sys.executable, "-c", CLAIMANT, str(k), str(lock_dir)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        got = json.loads(self.p.stdout.readline())
        self.cpus, self.affinity = got["cpus"], got["affinity"]

    def exit(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=30)


def test_claimants_get_distinct_cpus_and_a_cpu_comes_free_when_its_holder_exits(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    first = Claimant(1, tmp_path)
    assert first.cpus == [allowed[0]] and first.affinity == [allowed[0]]
    second = Claimant(1, tmp_path)
    if len(allowed) > 1:
        assert second.cpus == [allowed[1]] and second.affinity == [allowed[1]]
    else:  # nothing left: the second runs unpinned
        assert second.cpus is None and second.affinity == allowed
    first.exit()
    third = Claimant(1, tmp_path)
    assert third.cpus == [allowed[0]]
    second.exit()
    third.exit()


def test_a_claim_larger_than_the_free_cpus_pins_nothing_and_holds_nothing(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    too_many = Claimant(len(allowed) + 1, tmp_path)
    assert too_many.cpus is None and too_many.affinity == allowed
    everything = Claimant(len(allowed), tmp_path)  # the failed claim left every CPU free
    assert everything.cpus == allowed
    too_many.exit()
    everything.exit()


def test_claim_of_zero_cpus_or_without_a_lock_folder_is_no_claim(tmp_path):
    before = os.sched_getaffinity(0)
    assert claim_cpus(0, tmp_path) is None
    assert list(tmp_path.iterdir()) == []
    assert claim_cpus(1, tmp_path / "missing") is None  # no folder to lock in: unpinned
    assert os.sched_getaffinity(0) == before


def test_actors_pin_to_their_whole_cpu_share_only():
    assert pinned_cpus(EngineConfig(kind="ray")) == 1
    assert pinned_cpus(EngineConfig(kind="ray", cpus_per_worker=2)) == 2
    assert pinned_cpus(EngineConfig(kind="ray", cpus_per_worker=0.5)) == 0
    assert pinned_cpus(EngineConfig(kind="ray", cpus_per_worker=1.5)) == 0
    assert pinned_cpus(EngineConfig(kind="ray", pin_cpus=False)) == 0
