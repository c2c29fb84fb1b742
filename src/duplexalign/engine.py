"""Where a stage's per-item work runs: in this process (`local`) or on a Ray cluster (`ray`).

Owns `EngineConfig` (the `engine:` block of the map-style stages: ingest, annotate, pairs, streams
and the evaluation rollouts) and `ordered_map`, the one call those stages make for their
per-conversation or per-pair work. A stage hands it a *worker factory* (a picklable callable that
builds the per-item function once, loading whatever model it holds: ASR, TTS, codec, rollout model)
and an iterable of items; it yields one result per item, in input order, so the stage's driver loop
writes its manifests exactly as with the local engine (byte-identical by construction). `local`
builds the worker once in this process and maps lazily, item by item, as the stages always did.
`ray` starts a pool of actors (each builds the worker once, pinned to CPUs of its own (`pin_cpus`);
sized by `workers`, `cpus_per_worker`, `gpus_per_worker`), reads a bounded window of items ahead,
hands each idle actor the next call (up to `batch` items, fewer at the end of the input so the
workers finish together: `call_size`), and retries an item whose actor died (the actor is
restarted); the input's last items go to idle actors only. Workers return values; only the driver
appends to manifests, so a retried item is never written twice, and a driver killed mid-stage
resumes on rerun through the stages' own skip-done writers. Ray is imported only here and only by
the `ray` engine. It knows nothing about what the items are.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.cpus import claim_cpus
from duplexalign.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

WorkerFactory = Callable[[], Callable[[Any], Any]]
"""Builds the per-item function once per worker (a picklable callable: a class or a partial)."""

RAY_HINT = "pip install 'duplexalign[ray]'"


class EngineConfig(StageConfig):
    """Where a map-style stage runs its per-item work (`<stage>.engine` in a preset).

    Left out of every stage's digest: a stage run on Ray writes what the local engine writes, so
    switching engines never reruns a finished stage.
    """

    kind: Literal["local", "ray"] = "local"
    """`local`: in this process, item by item. `ray`: an actor pool on a Ray cluster."""
    address: str = "auto"
    """Ray cluster: `auto` (the one `ray start --head` runs on this machine, or RAY_ADDRESS),
    `HOST:PORT` of its head node, or `local` (start a private one-machine cluster for this run).
    Ignored when this process is already connected (ray.init was called before)."""
    workers: int | None = Field(None, ge=1)
    """Actors in the pool; None = the cluster's CPUs (or GPUs) divided by the per-worker share."""
    cpus_per_worker: float = Field(1.0, gt=0)
    """CPUs each actor reserves (and its OMP_NUM_THREADS, rounded up)."""
    gpus_per_worker: float = Field(0.0, ge=0)
    """GPUs each actor reserves (model-holding work on GPU nodes)."""
    batch: int = Field(1, ge=1)
    """Most items per actor call: cheap items (a short TTS line, a small encode) cost less than
    Ray's per-call overhead, so several travel together (results still come back one by one, in
    order). Calls shrink at the end of the input so the workers finish together (`call_size`)."""
    in_flight: int | None = Field(None, ge=1)
    """How far the driver reads ahead of the item it writes next, in calls of `batch` items
    (skipped items included); None = 4 per worker."""
    pin_cpus: bool = True
    """Pin each actor whose `cpus_per_worker` is whole to that many CPUs of its node that no other
    duplexalign worker holds (`cpus.claim_cpus`; the processes it starts, such as the TTS server,
    stay there too). An actor that finds too few free CPUs runs unpinned. Turn it off on nodes
    shared with other CPU-heavy work, which the claim does not see."""
    max_retries: int = Field(3, ge=0)
    """Times an item is retried, and an actor restarted, after its worker process died."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables of the workers (NO_TORCH_COMPILE=1 and OMP_NUM_THREADS are
    always set)."""


def digested(cfg: StageConfig, exclude: set[str] | None = None) -> dict[str, Any]:
    """A stage config as it enters the stage digest: without `engine` (and `exclude`)."""
    return cfg.model_dump(mode="json", exclude={"engine", *(exclude or set())})


def ordered_map(engine: EngineConfig, make_worker: WorkerFactory, items: Iterable[T],
                skip: Callable[[T], bool] | None = None, desc: str = "") -> Iterator[Any]:
    """Apply the worker built by `make_worker` to every item; yield the results in input order.

    Args:
        engine: where to run.
        make_worker: called once per worker (once in this process for `local`); returns the
            per-item function. Must be picklable for `ray` (a module-level class or a partial).
        items: consumed lazily (at most `in_flight` calls of `batch` items ahead of the result
            yielded last).
        skip: items for which it is true are yielded back unchanged, without a worker call.
        desc: what the work is, for log lines.

    Yields:
        `fn(item)` (or the item itself, when skipped), in the order of `items`. An exception of
        `fn` is raised here, as with a plain loop.
    """
    if engine.kind == "local":
        t0 = time.perf_counter()
        fn, n, startup = None, 0, 0.0
        for item in items:
            if skip is not None and skip(item):
                yield item
                continue
            if fn is None:
                t1 = time.perf_counter()
                fn = make_worker()
                startup = time.perf_counter() - t1
            n += 1
            yield fn(item)
        _record(MapTiming("local", int(fn is not None), n, n, startup, time.perf_counter() - t0))
        return
    yield from _ray_map(engine, make_worker, items, skip, desc)


def worker_env(engine: EngineConfig) -> dict[str, str]:
    """Environment variables of every Ray worker."""
    threads = str(max(1, int(-(-engine.cpus_per_worker // 1))))
    return {"NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "TOKENIZERS_PARALLELISM": "false", **engine.env}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise BackendUnavailable("engine ray", RAY_HINT) from e
    return ray


def _connect(engine: EngineConfig) -> bool:
    """Connect this process to the cluster; True when this call started the connection."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    try:  # no job runtime_env: the actors set `worker_env` themselves (see `_holder_class`)
        if engine.address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(address=engine.address, log_to_driver=False,
                     logging_level=logging.WARNING)
    except ConnectionError as e:
        raise ConfigError(f"engine.address={engine.address}: no Ray cluster there ({e}); start "
                          "one with `ray start --head`, or use engine.address=local") from None
    return True


def _pool_size(engine: EngineConfig, ray: Any) -> int:
    if engine.workers is not None:
        return engine.workers
    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // engine.cpus_per_worker)
    if engine.gpus_per_worker > 0:
        n = min(n, int(res.get("GPU", 0) // engine.gpus_per_worker))
    return max(1, n)


class _Slot:
    """One item's place in the output order: its result (or the error its worker raised)."""

    __slots__ = ("error", "ready", "value")

    def __init__(self, value: Any = None, ready: bool = False):
        self.value, self.ready, self.error = value, ready, None


class _Failed:
    """What an actor returns in place of an item whose function raised (the rest of its call is
    not computed, as a loop would stop there)."""

    def __init__(self, error: BaseException, where: str):
        self.error, self.where = error, where


def call_size(batch: int, queued: int, workers: int, exhausted: bool) -> int:
    """Items in the next actor call.

    While the input goes on, `batch` (the configured size). Once the whole input has been read,
    the calls shrink with what is left: `min(batch, ceil(queued / (SPREAD * workers)))`, at least
    1 (guided self-scheduling). Each idle worker pulls the next call, so the workers finish
    together: 24 slow items with `batch` 8 on 2 workers go out as 6, 5, 4, 3, 2, 1, 1, 1, 1 items
    (not 8, 8, 8, which leaves one worker idle a third of the time).

    Args:
        batch: `engine.batch`.
        queued: items read and not yet sent.
        workers: actors in the pool.
        exhausted: whether the input has been read to its end.
    """
    if not exhausted:
        return max(1, min(batch, queued))
    return max(1, min(batch, -(-queued // (SPREAD * workers))))


SPREAD = 2
"""Calls each worker gets, at least, out of the input's tail (see `call_size`)."""
DEPTH = 2
"""Calls an actor holds at once: the one it runs and the next (no idle gap between calls). Not for
the input's last items (no more than one per worker): each goes to a worker with nothing to do,
so a slow last item never waits behind another while a worker idles."""


@dataclass(frozen=True)
class MapTiming:
    """Wall seconds of one finished `ordered_map` (read by bench/engine.py).

    Attributes:
        kind: the engine.
        workers: workers that ran it (0: no item needed one).
        items: items computed by a worker (skipped ones not counted).
        calls: worker calls (the local engine: one per item).
        startup_s: from the first item that needed a worker until every worker was built (Ray:
            actor processes, imports, the worker factory; local: the factory).
        wall_s: from the map's start to its last result.
    """

    kind: str
    workers: int
    items: int
    calls: int
    startup_s: float
    wall_s: float


_timings: list[MapTiming] = []


def map_timings(clear: bool = False) -> list[MapTiming]:
    """The timings of the maps finished in this process (the last 64), oldest first; `clear`
    forgets them after returning them."""
    out = list(_timings)
    if clear:
        _timings.clear()
    return out


def _record(t: MapTiming) -> None:
    _timings.append(t)
    del _timings[:-64]


def _holder_class(ray: Any) -> Any:
    class WorkerHolder:
        """One actor: builds the worker once, then applies it to item after item.

        Its environment is set here, before the factory is unpickled (which imports the stage's
        modules, numpy, torch), rather than by a per-actor `runtime_env`: an actor with a runtime
        env of its own needs a fresh worker process (~0.7 s more per pool on 2 cores), while one
        without it takes a worker Ray has already started."""

        def __init__(self, env: dict[str, str], make_worker: bytes, cpus: int):
            os.environ.update(env)
            if cpus:  # before the factory starts anything; held until this process ends
                claim_cpus(cpus)
            self.failed: _Failed | None = None
            try:
                self.fn = ray.cloudpickle.loads(make_worker)()
            except Exception as e:  # noqa: BLE001 - raised by the driver at the first item
                self.failed = _Failed(e, traceback.format_exc())

        def pid(self) -> int:
            return os.getpid()

        def call(self, items: list[Any]) -> list[Any]:
            if self.failed is not None:  # the factory raised: as the local engine, at an item
                return [self.failed]
            out = []
            for item in items:
                try:
                    out.append(self.fn(item))
                except Exception as e:  # noqa: BLE001 - raised by the driver at this item's turn
                    out.append(_Failed(e, traceback.format_exc()))
                    break
            return out

    return ray.remote(WorkerHolder)


def _start_pool(engine: EngineConfig, ray: Any, make_worker: WorkerFactory, n: int
                ) -> list[Any]:
    holder = _holder_class(ray).options(
        num_cpus=engine.cpus_per_worker, num_gpus=engine.gpus_per_worker,
        max_restarts=engine.max_retries, max_task_retries=engine.max_retries)
    blob = ray.cloudpickle.dumps(make_worker)
    return [holder.remote(worker_env(engine), blob, pinned_cpus(engine))
            for _ in range(n)]  # started concurrently


def pinned_cpus(engine: EngineConfig) -> int:
    """CPUs each actor pins itself to: `cpus_per_worker` when whole and `pin_cpus` is on, else
    0 (unpinned: a fractional share is several actors to a CPU)."""
    share = engine.cpus_per_worker
    return int(share) if engine.pin_cpus and share >= 1 and share == int(share) else 0


def _ray_map(engine: EngineConfig, make_worker: WorkerFactory, items: Iterable[Any],
             skip: Callable[[Any], bool] | None, desc: str) -> Iterator[Any]:
    """The ray engine. The driver reads up to `in_flight * batch` items ahead of the one it
    yields next; each has a slot in output order. Items that need a worker wait in a queue, and
    an actor with fewer than `DEPTH` calls takes the next `call_size` of them (skipped items in
    between do not cut a call short; the input's last items go to idle actors only). Results
    fill their slots; the head of the order is yielded as soon as it is ready."""
    ray = _import_ray()
    t0 = time.perf_counter()
    started = _connect(engine)
    actors: list[Any] = []
    pids: list[int] = []  # of the actors up so far (`worker_pids`)
    probes: dict[Any, Any] = {}  # pid calls not answered yet: actors still being built
    n_items = n_calls = 0
    startup = t1 = 0.0
    try:
        n = _pool_size(engine, ray)
        ahead = (engine.in_flight or 4 * n) * engine.batch
        load = [0] * n
        pending: deque[_Slot] = deque()  # every item read and not yielded, in input order
        queue: deque[tuple[_Slot, Any]] = deque()  # items waiting for a worker
        inflight: dict[Any, tuple[list[_Slot], int]] = {}
        it = iter(items)
        exhausted = False

        while True:
            while not exhausted and len(pending) < ahead:
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if skip is not None and skip(item):
                    pending.append(_Slot(item, ready=True))
                    continue
                slot = _Slot()
                pending.append(slot)
                queue.append((slot, item))
            if queue and not actors:  # the pool starts with the first item that needs a worker
                t1 = time.perf_counter()
                actors = _start_pool(engine, ray, make_worker, n)
                # each actor answers once built; calls queue behind that, so the first actor up
                # starts working without waiting for the others
                probes = {a.pid.remote(): a for a in actors}
                _worker_pids.append(pids)
            while queue:
                a = min(range(n), key=load.__getitem__)
                if load[a] >= DEPTH or (load[a] and exhausted and len(queue) <= n):
                    break  # the last items (one per worker at most) go to idle workers only
                k = call_size(engine.batch, len(queue), n, exhausted)
                group = [queue.popleft() for _ in range(min(k, len(queue)))]
                ref = actors[a].call.remote([item for _, item in group])
                inflight[ref] = ([slot for slot, _ in group], a)
                load[a] += 1
                n_items, n_calls = n_items + len(group), n_calls + 1
            while pending and pending[0].ready:
                slot = pending.popleft()
                if slot.error is not None:
                    raise slot.error
                yield slot.value
            if not pending:
                if exhausted:
                    break
                continue  # the whole window was written: take the next items
            done, _ = ray.wait([*inflight, *probes], num_returns=1)
            for ref in done:
                if ref in probes:  # an actor is up
                    del probes[ref]
                    pids.append(ray.get(ref))
                    if not probes:
                        startup = time.perf_counter() - t1
                        log.info("engine ray: %d workers for %s, started in %.1f s", n,
                                 desc or "the stage", startup)
                    continue
                slots, a = inflight.pop(ref)
                load[a] -= 1
                try:
                    values = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    raise e.as_instanceof_cause() from None
                for slot, value in zip(slots, values, strict=False):
                    if isinstance(value, _Failed):
                        value.error.add_note(f"in the Ray worker:\n{value.where}")
                        slot.error = value.error
                    else:
                        slot.value = value
                    slot.ready = True
                for slot in slots[len(values):]:  # after an error: never reached
                    slot.error, slot.ready = values[-1].error, True
        if probes:  # the input ran out before every actor was up
            startup = time.perf_counter() - t1
        _record(MapTiming("ray", len(actors), n_items, n_calls, startup,
                          time.perf_counter() - t0))
    finally:
        for a in actors:
            ray.kill(a)
        if actors:
            _worker_pids.remove(pids)
        if started:
            ray.shutdown()


_worker_pids: list[list[int]] = []


def worker_pids() -> list[int]:
    """Process ids of the Ray workers of the maps running in this process (as first started)."""
    return [pid for pids in _worker_pids for pid in pids]
