"""CPUs of its node that an engine worker claims for itself, so its work stays on its own cores.

Owns `claim_cpus`: a worker process takes `k` CPUs of the ones it may run on that no other
duplexalign worker on the node holds, and pins itself to them. The claim is a lock file per CPU
(`fcntl.flock` on `<lock_dir>/duplexalign-cpu-<n>.lock`), so workers of any pool, job or Ray node
process on one machine share the CPUs out between them, and a CPU comes free the moment its
holder exits, however it exits (the kernel drops the lock). Why pin: a worker's work hops between
processes (the stage's worker, the TTS server, a child forked per utterance), and on a VM whose
scheduler packs wake-ups onto a busy vCPU, two unpinned workers on 2 vCPUs left a CPU idle 10-15 %
of the time (docs/benchmarks.md, "Engines"). Nothing here knows about Ray.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path


def claim_cpus(k: int, lock_dir: str | Path | None = None) -> list[int] | None:
    """Pin the calling thread, and every process and thread it starts from now on, to `k` CPUs
    that no other claimant on this machine holds. The claim lasts as long as this process: its
    lock files stay open until it exits.

    Args:
        k: CPUs to claim (the worker's whole-CPU share, >= 1).
        lock_dir: where the lock files live (default: the system's temporary folder, which every
            worker on the node shares).

    Returns:
        The claimed CPUs, ascending, or None when fewer than `k` of this thread's allowed CPUs
        are free, the lock folder cannot be written or the platform cannot pin (then nothing is
        held and the affinity is unchanged).
    """
    if k < 1 or not hasattr(os, "sched_setaffinity"):
        return None
    folder = Path(lock_dir or tempfile.gettempdir())
    held: list[tuple[int, int]] = []  # (cpu, locked fd)
    try:
        for cpu in sorted(os.sched_getaffinity(0)):
            fd = os.open(folder / f"duplexalign-cpu-{cpu}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((cpu, fd))
            if len(held) == k:
                cpus = [c for c, _ in held]
                os.sched_setaffinity(0, cpus)
                return cpus
    except OSError:  # no writable lock folder, or pinning refused: run unpinned
        pass
    for _, fd in held:
        os.close(fd)
    return None
