"""Beyond one machine: :func:`vitrep.running.runs.run_batch` on a Ray cluster.

:class:`RayExecutor` keeps a pool of long-lived Ray actors, one per GPU where
the cluster has GPUs (``gpus_per_worker`` may be fractional: 0.5 puts two
workers on each GPU), else one per CPU slot.  Each actor is a worker process
that keeps its models loaded across batches (the engine's ``load_model``
cache lives there).  :meth:`RayExecutor.run_batch` has the contract of
``run_batch``: configs are validated, memo keys come from ``cache_key``, memo
hits are read on the driver, and the misses are grouped with ``plan_batches``
and chunked with ``chunks.split_rows``; large chunks are cut further so that
every worker has work.  Chunks go to free workers, the largest first
(preferring a worker that already holds the chunk's model).  Results come
back as ``Result.to_bytes`` and are written to the driver's memo as each
chunk finishes, so a repeat is all hits and a finished chunk is never
computed twice.  A worker that dies is restarted by Ray and its chunk retried
there (``max_restarts``, ``max_task_retries``).

Ray is imported lazily: ``import vitrep`` never needs it, and a missing Ray
is one sentence (a :class:`~vitrep.errors.ConfigError`).  The chunks, their
costs and the worker actor are :mod:`.ray_work`'s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import ConfigError, VitrepError
from ..result import Progress
from .ray_work import Chunk, ClusterProgress, Worker, balance, row_cost

log = logging.getLogger("vitrep")
RAY_MISSING = "Ray is not installed: pip install -r requirements-ray.txt"
LOCAL = ("", "local", None)
OBJECT_STORE_MB = 512  # a local Ray's shared-memory store: images and result blobs are small
POLL_SECONDS = 0.5  # the driver wakes this often, so Ctrl-C is handled promptly


def import_ray():
    """The ``ray`` module, or a one-sentence :class:`ConfigError` when it is not installed."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Runs :func:`~vitrep.running.runs.run_batch` on a pool of Ray actors.

    ``address``: ``None``/``"local"`` starts a local Ray (``num_cpus``:
    ``workers * cpus_per_worker``, else every core) and shuts it down at
    :meth:`close`; any other address (``"auto"``, ``"ray://host:10001"``,
    ``"host:6379"``) joins that cluster, shipping the ``vitrep`` package to
    its workers (torch and the rest must be installed there).  A Ray already
    initialised in this process is used as it is and left running.
    ``workers``: the pool's size (default: GPUs / ``gpus_per_worker``, or CPUs
    / ``cpus_per_worker``).  ``gpus_per_worker``: ``None`` takes 1 where the
    cluster has GPUs and 0 where it has none.  ``min_chunks``: cut batches
    until there are at least this many chunks (default twice the workers);
    ``max_rows``: at most this many rows a chunk.

    Use it as a context manager (the actors and their models live until the
    block ends); a :meth:`run_batch` outside one starts and closes around
    itself.  Calls from several threads take turns on the pool.
    """

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None,
                 gpus_per_worker: Optional[float] = None, cpus_per_worker: int = 1,
                 max_restarts: int = 3, max_task_retries: int = 3, min_chunks: Optional[int] = None,
                 max_rows: Optional[int] = None, log_to_driver: bool = False) -> None:
        import_ray()  # a missing Ray is one sentence, at once
        if workers is not None and workers < 1:
            raise ConfigError(f"The number of Ray workers must be at least 1, not {workers}.")
        if gpus_per_worker is not None and not gpus_per_worker >= 0:
            raise ConfigError(f"GPUs per Ray worker must be a number >= 0 (e.g. 0.5), not {gpus_per_worker}.")
        if cpus_per_worker < 1:
            raise ConfigError(f"CPUs per Ray worker must be at least 1, not {cpus_per_worker}.")
        self.address = None if address in LOCAL else address
        self.workers, self.gpus_per_worker, self.cpus_per_worker = workers, gpus_per_worker, int(cpus_per_worker)
        self.max_restarts, self.max_task_retries = max_restarts, max_task_retries
        self.min_chunks, self.max_rows, self.log_to_driver = min_chunks, max_rows, log_to_driver
        self.actors: list = []
        self.pids: list[Optional[int]] = []
        self.models: list[set] = []  # models each actor has run (it keeps them loaded)
        self.busy: dict[int, object] = {}  # actor index -> the chunk's object ref
        self.restarts = 0  # worker restarts seen (a chunk came back from a new process)
        self.worker_device = "cpu"
        self.started_ray = False
        self._entered = 0
        self._lock = threading.RLock()  # one call at a time on the pool (callers in other threads wait)

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "RayExecutor":
        with self._lock:
            self._entered += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._entered -= 1
            if self._entered == 0:
                self.close()

    def start(self) -> None:
        """Join or start Ray and start the workers (once)."""
        if self.actors:
            return
        ray = import_ray()
        if not ray.is_initialized():
            kw = dict(include_dashboard=False, log_to_driver=self.log_to_driver, logging_level=logging.WARNING)
            if self.address is None:
                cpus = self.workers * self.cpus_per_worker if self.workers else (os.cpu_count() or 1)
                ray.init(address="local", num_cpus=cpus, object_store_memory=OBJECT_STORE_MB * 2**20, **kw)
            else:
                ray.init(address=self.address, runtime_env={"py_modules": [str(Path(__file__).parent)]}, **kw)
            self.started_ray = True
        res = ray.cluster_resources()
        gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 0))
        gpw = self.gpus_per_worker if self.gpus_per_worker is not None else (1.0 if gpus else 0.0)
        if gpw > 0 and gpus == 0:
            raise ConfigError("GPUs per worker were asked for, but the Ray cluster has no GPUs; leave out --ray-gpus.")
        if gpw > 0:
            n = self.workers or max(1, int(gpus / gpw + 1e-9))
        else:
            n = self.workers or max(1, int(cpus // self.cpus_per_worker))
        self.worker_device = "cuda" if gpw > 0 else "cpu"
        actor = ray.remote(Worker).options(num_cpus=self.cpus_per_worker, num_gpus=gpw,
                                            max_restarts=self.max_restarts, max_task_retries=self.max_task_retries)
        self.actors = [actor.remote(self.cpus_per_worker) for _ in range(n)]
        self.pids = ray.get([a.pid.remote() for a in self.actors])
        self.models = [set() for _ in self.actors]
        log.info("ray: %d worker(s) on %s (%s GPU each)", n, self.worker_device, gpw)

    def kill_workers(self) -> None:
        """End every worker (no restart); the next run starts new ones."""
        if not self.actors:
            return
        ray = import_ray()
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass
        self.actors, self.pids, self.models, self.busy = [], [], [], {}

    def close(self) -> None:
        """Kill the workers; shut down a Ray this executor started."""
        self.kill_workers()
        if self.started_ray:
            import_ray().shutdown()
            self.started_ray = False

    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a chunk now."""
        return [self.pids[k] for k in self.busy if self.pids[k] is not None]

    # --- the run -----------------------------------------------------------------------------
    def _keys(self, images, configs) -> list[str]:
        from ..models.registry import resolve_device
        from .runs import cache_key

        here = resolve_device("auto").type
        remote = [i for i, c in enumerate(configs) if c.device in ("auto", "", None) and here != self.worker_device]
        keys = [None if i in set(remote) else cache_key(im, c) for i, (im, c) in enumerate(zip(images, configs))]
        if remote:  # the workers resolve "auto" to another device than this driver: they make those keys
            ray = import_ray()
            got = ray.get(self.actors[0].keys.remote([images[i].cpu() for i in remote],
                                                     [configs[i].to_dict() for i in remote]))
            for i, k in zip(remote, got):
                keys[i] = k
        return keys

    def run_batch(self, images: Sequence, configs: Sequence, memo=None,
                  progress: Optional[Callable[[Progress], Optional[bool]]] = None, **_ignored) -> list:
        """``run_batch``'s contract on the cluster; ``progress(ClusterProgress)`` per finished chunk (its ``batch``:
        the chunk's batch).

        The callback may return True to stop: chunks not finished are
        cancelled and their rows are ``None``.  Ctrl-C (KeyboardInterrupt)
        cancels the remaining work, ends the workers, shuts down a Ray this
        executor started, and is raised again.
        """
        if not self._entered:
            with self:
                return self.run_batch(images, configs, memo, progress)
        with self._lock:
            return self._run(images, configs, memo, progress)

    def _run(self, images, configs, memo, progress) -> list:
        from ..config import validate
        from ..result import Result
        from .chunks import plan_chunks

        configs = [validate(c) for c in configs]
        self.start()
        keys = self._keys(images, configs)
        out: list = [memo.get(k, Result.from_bytes) if memo is not None else None for k in keys]
        costs = [row_cost(c) if out[i] is None else 0.0 for i, c in enumerate(configs)]
        chunks: list[Chunk] = []
        for g, part in plan_chunks(configs, [i for i, r in enumerate(out) if r is None]):
            step = self.max_rows or len(part)
            chunks += [Chunk(g, part[k:k + step], sum(costs[i] for i in part[k:k + step]), configs[part[0]].model)
                       for k in range(0, len(part), step)]
        chunks = balance(chunks, costs, self.min_chunks or 2 * len(self.actors))
        if not chunks:
            return out
        return self._dispatch(images, configs, keys, chunks, costs, out, memo, progress)

    def _pick(self, pending: list[Chunk], k: int) -> Chunk:
        """The next chunk for worker ``k``: the costliest whose model it holds, else the costliest."""
        mine = [c for c in pending if c.model in self.models[k]]
        c = max(mine or pending, key=lambda c: c.cost)
        pending.remove(c)
        return c

    def _dispatch(self, images, configs, keys, chunks, costs, out, memo, progress) -> list:
        ray = import_ray()
        pending = list(chunks)
        inflight: dict = {}  # ref -> (actor index, chunk)
        free = list(range(len(self.actors)))
        total = {"chunks": len(chunks), "rows": sum(len(c.rows) for c in chunks),
                 "steps": sum(configs[i].steps for c in chunks for i in c.rows),
                 "cost": sum(c.cost for c in chunks) or 1.0}
        done = {"chunks": 0, "rows": 0, "steps": 0, "cost": 0.0}
        t0 = time.perf_counter()
        try:
            while pending or inflight:
                while pending and free:
                    k = free.pop(0)
                    c = self._pick(pending, k)
                    if memo is not None and not self._still_to_do(c, out, memo, keys, configs, costs, total):
                        free.insert(0, k)  # another process finished it meanwhile: no longer this call's work
                        continue
                    ref = self.actors[k].run.remote([images[i].detach().cpu() for i in c.rows],
                                                    [configs[i].to_dict() for i in c.rows])
                    inflight[ref] = (k, c)
                    self.busy[k] = ref
                    self.models[k].add(c.model)
                if not inflight:
                    continue
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    k, c = inflight.pop(ref)
                    free.append(k)
                    results = self._collect(ref, k, c, out, memo, keys)
                    for key, n in (("chunks", 1), ("rows", len(c.rows)),
                                   ("steps", sum(configs[i].steps for i in c.rows)), ("cost", c.cost)):
                        done[key] += n
                    if progress is not None and progress(self._progress(results, c, done, total, t0)):
                        self._abandon(inflight, memo, keys)
                        return out
        except BaseException:
            self._abandon(inflight, memo, keys)
            if self.started_ray:
                self.close()
            raise
        return out

    @staticmethod
    def _still_to_do(c, out, memo, keys, configs, costs, total) -> bool:
        """Read the rows of chunk ``c`` another process has finished since the call began (dropping them
        from ``c`` and the totals); announce the rest.  False when none is left."""
        from ..result import Result

        for i in c.rows:
            out[i] = memo.get(keys[i], Result.from_bytes)
        hits = [i for i in c.rows if out[i] is not None]
        if hits:
            total["rows"] -= len(hits)
            total["steps"] -= sum(configs[i].steps for i in hits)
            total["cost"] -= sum(costs[i] for i in hits)
            c.cost -= sum(costs[i] for i in hits)
            c.rows = [i for i in c.rows if out[i] is None]
        if not c.rows:
            total["chunks"] -= 1
            return False
        memo.announce(keys[i] for i in c.rows)
        return True

    def _collect(self, ref, k: int, c, out, memo, keys) -> list:
        """A finished chunk: its results into ``out`` and the memo; a restarted worker counted."""
        from ..result import Result

        del self.busy[k]
        if memo is not None:
            memo.settle(keys[i] for i in c.rows)
        pid, blobs = self._get(ref)
        if pid != self.pids[k]:
            self.restarts += 1 if self.pids[k] is not None else 0
            self.pids[k] = pid
        results = []
        for i, data in zip(c.rows, blobs):
            r = Result.from_bytes(data)
            r.from_cache = False
            out[i] = r
            results.append(r)
            if memo is not None and r.status != "stopped":
                memo.store(keys[i], data)
        return results

    @staticmethod
    def _progress(results, c, done: dict, total: dict, t0: float) -> "ClusterProgress":
        elapsed = time.perf_counter() - t0
        left = elapsed * max(0.0, total["cost"] - done["cost"]) / done["cost"] if done["cost"] else float("nan")
        return ClusterProgress(
            step=done["steps"], total=total["steps"], seconds=elapsed,
            rows=[{k: v[-1] for k, v in r.curves.items()} if r.curves["step"] else {} for r in results],
            images=[r.image for r in results], baselines=[r.baseline["embedding_distance"] for r in results],
            chunks_done=done["chunks"], chunks_total=total["chunks"], rows_done=done["rows"],
            rows_total=total["rows"], seconds_left=left, chunk_rows=tuple(c.rows), batch=c.batch)

    def _get(self, ref):
        """A chunk's result; a worker's own one-sentence error is raised as itself."""
        ray = import_ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, VitrepError):
                raise cause from None
            raise

    def _abandon(self, inflight: dict, memo, keys) -> None:
        """Cancel chunks in flight and end their workers (a running actor task cannot be interrupted)."""
        if not inflight:
            return
        ray = import_ray()
        for ref, (k, c) in list(inflight.items()):
            try:
                ray.cancel(ref)
            except Exception:
                pass
            if memo is not None:
                memo.settle(keys[i] for i in c.rows)
        inflight.clear()
        self.kill_workers()  # models are loaded again by the next run's workers
