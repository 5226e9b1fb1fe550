"""Batches and chunks: which configs run together, cut so that each chunk's activations fit the memory budget.

:func:`plan_batches` groups configs that share a model and schedule (rows
never interact, so a row of a batch equals its lone run); :func:`plan_chunks`
cuts each batch's memo misses by :func:`split_rows`, which reads the row
estimates of :mod:`vitrep.models.sizes` against what the shared models
(:mod:`vitrep.models.pool`) leave of the memory budget (:mod:`vitrep.limits`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from .. import limits
from ..config import SHARED_FIELDS, ReconstructConfig
from ..models.pool import cache_bytes, is_cached
from ..models.registry import ModelRef
from ..models.sizes import MemoryBudgetError, gb, model_bytes, release, row_bytes, short_name


def plan_batches(configs: Sequence[ReconstructConfig]) -> list[list[int]]:
    """The batches :func:`run_batch` runs ``configs`` in: indices grouped by shared model and schedule, in order."""
    groups: dict = {}
    for i, c in enumerate(configs):
        groups.setdefault(tuple(getattr(c, f) for f in SHARED_FIELDS), []).append(i)
    return list(groups.values())


def plan_chunks(configs: Sequence[ReconstructConfig], todo: Sequence[int]) -> list[tuple[int, list[int]]]:
    """The rows ``todo`` (the memo's misses) as ``(batch index, rows)`` chunks: the batches of
    :func:`plan_batches`, each split so that its activations fit the memory budget (:mod:`vitrep.models.sizes`)."""
    todo = set(todo)
    chunks = []
    for g, group in enumerate(plan_batches(configs)):
        rows = [i for i in group if i in todo]
        if rows:
            c0 = configs[rows[0]]
            sizes = [row_bytes(c0.model, configs[i].tap, configs[i].pos_embed, configs[i].normalize)
                     for i in rows] if limits.memory_budget_bytes() else 0
            chunks += [(g, chunk) for chunk in split_rows(rows, sizes, model=c0.model)]
    return chunks



def split_rows(rows: list[int], per_row_bytes: int | Sequence[int], model: Optional[ModelRef] = None) -> list[list[int]]:
    """``rows`` in order, cut into chunks whose activations fit what the cached models leave of the memory budget.

    ``per_row_bytes`` is one number for every row or one per row (e.g.
    :func:`row_bytes` of each row's tap).  ``model``: the batch's model, if
    it may not be loaded yet (its :func:`model_bytes` is reserved).  With no
    budget, one chunk.  A row larger than what the cached models leave runs
    alone; a row that with its model exceeds the whole budget is refused
    (:class:`MemoryBudgetError`, one sentence) before anything runs.  Under a
    budget it first calls :func:`release`.
    """
    rows = list(rows)
    if not rows:
        return []
    limit = limits.memory_budget_bytes()
    if limit is None:
        return [rows]
    sizes = [int(per_row_bytes)] * len(rows) if isinstance(per_row_bytes, (int, float)) else [int(b) for b in per_row_bytes]
    if len(sizes) != len(rows):
        raise ValueError(f"{len(sizes)} sizes for {len(rows)} rows")
    own = model_bytes(model) if model is not None else 0
    worst = max(sizes)
    if worst + own > limit:
        who = f"{short_name(model)} needs about {gb(worst + own)} for one image of this batch" if model is not None \
            else f"One image of this batch needs about {gb(worst)}"
        raise MemoryBudgetError(f"{who}, more than this server's {gb(limit)} memory budget; choose a smaller architecture "
                                f"or an earlier layer.")
    release()  # the previous batch's leftovers go before this one starts
    room = limit - cache_bytes() - (own if model is not None and not is_cached(model) else 0)
    chunks, chunk, used = [], [], 0
    for r, b in zip(rows, sizes):
        if chunk and used + b > room:
            chunks.append(chunk)
            chunk, used = [], 0
        chunk.append(r)
        used += b
    chunks.append(chunk)
    return chunks

