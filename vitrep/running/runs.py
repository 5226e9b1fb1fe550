"""Runs through the memo and the device queue: one reconstruction (:class:`Job`) or a grid of them.

"Read it from the memo, else compute it (queued for the device) and
remember it" is written once, here, for the dashboard and the command line:

- :func:`prepare_job` validates a config and computes its memo key, once; the
  :class:`Job` it returns answers :meth:`Job.cached` (a hit or ``None``) and
  :meth:`Job.run` (the hit, or the computation, single-flight per key).
- :func:`run_batch` runs many configs: hits are read, the misses run as
  batches that share a model and schedule (:func:`plan_batches`), each batch
  single-flight in the memo (:meth:`vitrep.running.memo.Memo.get_or_compute_many`).

Stopped runs are never remembered; finished and diverged ones are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

from ..models import sizes
from ..reconstruction import reconstruct_many
from .chunks import plan_batches, plan_chunks
from .memo import Memo, make_key, torch_release
from ..config import ReconstructConfig, validate
from ..images import content_hash
from ..models.pool import load_model
from ..models.registry import resolve_device
from ..models.weights import weights_identity
from .queue import OnWait, device_queue
from ..result import Progress, ProgressFn, Result


def device_lock(device: str, on_wait: Optional[OnWait] = None, limit: Optional[int] = None):
    """One computation per device at a time, first come first served (:mod:`vitrep.running.queue`):
    sessions queue instead of oversubscribing a GPU or 2 CPU cores; ``on_wait(place, queued)`` hears
    a waiting caller's place, and ``limit`` refuses a run beyond that many waiting ones."""
    return device_queue(resolve_device(device).type).hold(on_wait, limit)


def cache_key(image: torch.Tensor, config: ReconstructConfig) -> str:
    """The memo key of a run: image pixels, config (defaults, device and precision resolved; fp32 as before
    precision existed), weights identity, torch version."""
    config = validate(config)
    d = config.to_dict()
    d["device"] = resolve_device(config.device).type
    if d["precision"] == "fp32":  # the keys of fp32 runs stay those from before the field existed
        del d["precision"]
    return make_key("reconstruct", image=content_hash(image), config=d, weights=weights_identity(config.model),
                    torch=torch_release())


def _keep(r: Result) -> bool:
    return r.status != "stopped"


@dataclass(frozen=True)
class Job:
    """One reconstruction with its validated config and memo key (computed once, by :func:`prepare_job`)."""

    image: torch.Tensor
    config: ReconstructConfig
    key: str

    def cached(self, memo: Optional[Memo]) -> Optional[Result]:
        """The remembered result, or None (no memo, or not computed yet)."""
        return None if memo is None else memo.get(self.key, Result.from_bytes)

    def busy(self, memo: Optional[Memo]) -> bool:
        """Is another caller computing this very run now?"""
        return memo is not None and memo.busy(self.key)

    def load(self) -> None:
        """Load the model now, so a weights problem is one sentence before any progress is shown."""
        load_model(self.config.model, self.config.device)

    def run(self, memo: Optional[Memo] = None, progress: Optional[ProgressFn] = None,
            on_wait: Optional[OnWait] = None, queue_limit: Optional[int] = None) -> Result:
        """The remembered result, else the computation (queued for the device), remembered unless stopped."""
        def compute() -> Result:
            with device_lock(self.config.device, on_wait, queue_limit):
                return reconstruct_many([self.image], [self.config], progress)[0]

        if memo is None:
            return compute()
        return memo.get_or_compute(self.key, compute, Result.to_bytes, Result.from_bytes, keep=_keep)


def prepare_job(image: torch.Tensor, config: ReconstructConfig) -> Job:
    """Validate ``config`` (once: a validated config is not checked again), refuse a row that could never
    fit in memory (:func:`vitrep.models.sizes.check_row`, one sentence, before any work) and compute its memo key."""
    config = validate(config)
    sizes.check_row(config)
    return Job(image, config, cache_key(image, config))



def check_rows(configs: Sequence[ReconstructConfig]) -> None:
    """:func:`vitrep.models.sizes.check_row` of each distinct row (model, tap, device) of ``configs``."""
    seen = set()
    for c in configs:
        k = (c.model, c.tap, c.pos_embed, c.normalize, c.device)
        if k not in seen:
            seen.add(k)
            sizes.check_row(c)


def run(image: torch.Tensor, config: ReconstructConfig, memo: Optional[Memo] = None,
        progress: Optional[ProgressFn] = None, on_wait: Optional[OnWait] = None,
        queue_limit: Optional[int] = None) -> Result:
    """:func:`vitrep.reconstruction.reconstruct` through the disk memo: a repeat is a hit (``result.from_cache``)."""
    return prepare_job(image, config).run(memo, progress, on_wait, queue_limit)


def run_batch(images: Sequence[torch.Tensor], configs: Sequence[ReconstructConfig], memo: Optional[Memo] = None,
              progress: Optional[ProgressFn] = None, on_wait: Optional[OnWait] = None,
              queue_limit: Optional[int] = None, executor=None) -> list[Optional[Result]]:
    """Many runs through the memo: hits are read, the misses run as batches of shared model and schedule.

    ``progress(Progress)`` reports each batch; ``Progress.batch`` is the
    batch's place in :func:`plan_batches` (batches that are all memo hits
    are skipped), rows of a batch are its misses, in order.  A batch is split
    into chunks whose activations fit the memory budget (:mod:`vitrep.running.chunks`);
    each chunk is single-flight: callers asking for the same rows at once
    compute them once.  A batch stopped by its callback ends the whole call
    (later batches are not started; their rows are ``None``).  ``executor``
    (:class:`vitrep.running.distributed.RayExecutor`) runs the call on a Ray cluster,
    with the same contract.
    """
    if executor is not None:
        configs = [validate(c) for c in configs]
        check_rows(configs)  # a row that could never fit is refused here, not on a worker
        return executor.run_batch(images, configs, memo, progress)
    configs = [validate(c) for c in configs]
    keys = [cache_key(im, c) for im, c in zip(images, configs)]
    out: list = [memo.get(k, Result.from_bytes) if memo is not None else None for k in keys]
    check_rows([c for c, r in zip(configs, out) if r is None])  # before any work: one sentence for an impossible row
    for g, rows in plan_chunks(configs, [i for i, r in enumerate(out) if r is None]):
        def compute(todo: list[int], rows=rows, g=g) -> list[Result]:
            picked = [rows[j] for j in todo]  # the configs this chunk runs: a progress row i is configs[picked[i]]
            cb = None if progress is None else (lambda p: progress(replace(p, batch=g, index=tuple(picked))))
            with device_lock(configs[picked[0]].device, on_wait, queue_limit):
                return reconstruct_many([images[i] for i in picked], [configs[i] for i in picked], cb)

        if memo is None:
            batch = compute(list(range(len(rows))))
        else:
            batch = memo.get_or_compute_many([keys[i] for i in rows], compute, Result.to_bytes, Result.from_bytes,
                                             keep=_keep)
        for i, r in zip(rows, batch):
            out[i] = r
        if any(r.status == "stopped" for r in batch):
            break
    return out


__all__ = ["Job", "Progress", "cache_key", "device_lock", "plan_batches", "plan_chunks", "prepare_job", "run", "run_batch", "check_rows"]
