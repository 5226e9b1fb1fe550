"""The work a Ray cluster does for :class:`vitrep.running.distributed.RayExecutor`.

Rows are cut into :class:`Chunk` s (rows of one batch: a shared model and
schedule), each costed by :func:`row_cost` and cut further by :func:`balance`
so that every worker has work; a :class:`Worker` actor runs a chunk with the
engine and keeps its models loaded; :class:`ClusterProgress` is what a
progress callback sees once per finished chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from ..result import Progress


@dataclass
class ClusterProgress(Progress):
    """What a Ray run's progress callback sees, once per finished chunk.

    As :class:`~vitrep.result.Progress` (``step``/``total`` are steps
    done/in all over every row of the call, so ``steps_per_second`` is the
    cluster's rate; ``rows``/``images``/``baselines`` are the finished chunk's
    final numbers), plus the counts of chunks and rows and an estimate of the
    seconds left (from the finished share of the estimated work).
    """

    chunks_done: int = 0
    chunks_total: int = 0
    rows_done: int = 0
    rows_total: int = 0
    seconds_left: float = float("nan")
    chunk_rows: tuple = ()  # the finished chunk's row indices in the call


class Worker:
    """A Ray actor: one worker process running chunks with the engine, its models kept loaded."""

    def __init__(self, threads: int = 1) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))

    def pid(self) -> int:
        return os.getpid()

    def keys(self, images, configs: list[dict]) -> list[str]:
        """Memo keys as this worker will run the configs (its ``auto`` device)."""
        from ..config import ReconstructConfig
        from .runs import cache_key

        return [cache_key(im, ReconstructConfig.from_dict(d)) for im, d in zip(images, configs)]

    def run(self, images, configs: list[dict]) -> tuple[int, list[bytes]]:
        """One chunk (shared model and schedule) without a memo: ``(pid, [Result.to_bytes()])``."""
        from ..config import ReconstructConfig
        from .runs import run_batch

        cfgs = [ReconstructConfig.from_dict(d) for d in configs]
        results = run_batch(images, cfgs)  # the worker's own memory budget splits it further if it must
        return os.getpid(), [r.to_bytes() for r in results]


@dataclass
class Chunk:
    batch: int  # its batch's place in plan_batches
    rows: list
    cost: float
    model: object


def row_cost(config) -> float:
    """Relative work of one row: steps x the activations its backward keeps (:func:`vitrep.models.sizes.row_bytes`)."""
    from ..models.sizes import row_bytes

    try:
        size = row_bytes(config.model, config.tap, config.pos_embed, config.normalize)
    except Exception:  # an estimate only
        size = 1
    return float(config.steps) * max(1, size)


def balance(chunks: list[Chunk], costs: Sequence[float], target: int) -> list[Chunk]:
    """Cut the costliest chunks in two (contiguous rows, about equal work) until there are ``target``."""
    chunks = list(chunks)
    while len(chunks) < target:
        splittable = [c for c in chunks if len(c.rows) > 1]
        if not splittable:
            break
        c = max(splittable, key=lambda c: c.cost)
        acc, cut = 0.0, 1
        for k, i in enumerate(c.rows[:-1], 1):
            acc += costs[i]
            cut = k
            if acc >= c.cost / 2:
                break
        a, b = c.rows[:cut], c.rows[cut:]
        at = chunks.index(c)
        chunks[at:at + 1] = [Chunk(c.batch, a, sum(costs[i] for i in a), c.model),
                             Chunk(c.batch, b, sum(costs[i] for i in b), c.model)]
    return chunks
