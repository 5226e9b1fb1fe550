"""Layer taps: forward only as far as the chosen layer.

A tap is a canonical string (``encoder-3``, ``only-encoder-3``, ``layer2.1``,
...), named and parsed by the model's family adapter (:mod:`vitrep.models.families`,
whose modules list each family's taps).  :func:`tap_path` turns a tap into a
*path*: the list of operations from the input image to that layer's output,
each with a hashable key; the adapter supplies the operations.
:func:`run_paths` evaluates several paths over a batch at once, sharing every
common prefix: a layer sweep runs encoder 1 once for all twelve samples,
encoder 2 for eleven, and so on, and stops each sample at its own layer.
Batch rows never interact (eval mode), so a row's result equals a lone run.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..fast import linear as fastops
from .families.base import Op
from .weights import LoadedModel
from .surgery import Surgery


def describe_tap(tap: str) -> str:
    return tap.replace("only-", "only ").replace("-", " ")


def _normalize_op(lm: LoadedModel) -> Op:
    mean = torch.tensor(lm.spec.mean, device=lm.device).view(1, 3, 1, 1)
    std = torch.tensor(lm.spec.std, device=lm.device).view(1, 3, 1, 1)
    return Op(("normalize",), lambda x: (x - mean) / std)


def tap_path(lm: LoadedModel, tap: str, surgery: Surgery = Surgery(), pos_embed: bool = True,
             normalize: bool = False, fast: bool | None = None) -> list[Op]:
    """The operations from image to ``tap``; keys include surgery so differing rows split.

    ``fast`` (default: on for a CPU model unless ``VITREP_FAST=0``) runs linear
    layers on :mod:`vitrep.fast.linear`' packed path; the result is the same up to
    float rounding.
    """
    if fast is None:
        fast = lm.device.type == "cpu" and fastops.enabled()
    ops: list[Op] = [_normalize_op(lm)] if normalize else []
    return ops + lm.adapter.path(lm, tap, surgery, pos_embed, fast)


def _plan(paths: Sequence[Sequence[Op]], rows: list[int], depth: int) -> list:
    """The prefix tree of ``paths[rows]`` below ``depth``: ``[(op, positions, subtree) | (row, position)]``."""
    plan, groups = [], {}
    for pos, r in enumerate(rows):
        if len(paths[r]) == depth:
            plan.append((r, pos))
        else:
            groups.setdefault(paths[r][depth].key, []).append(pos)
    for positions in groups.values():
        sub = [rows[p] for p in positions]
        plan.append((paths[sub[0]][depth], positions, _plan(paths, sub, depth + 1)))
    return plan


def _take(x: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """Rows ``positions`` of ``x``: the tensor itself, a slice where they are consecutive, else a gather."""
    if len(positions) == x.shape[0]:
        return x
    if positions == list(range(positions[0], positions[0] + len(positions))):
        return x[positions[0]:positions[0] + len(positions)]
    return x[positions]


def needs_gather(paths: Sequence[Sequence[Op]]) -> bool:
    """Whether :func:`run_paths` must gather rows (index tensors built from the host: not CUDA-graph safe)."""
    def walk(plan: list, n: int) -> bool:
        for item in plan:
            if len(item) == 3:
                op, positions, sub = item
                if len(positions) != n and positions != list(range(positions[0], positions[0] + len(positions))):
                    return True
                if walk(sub, len(positions)):
                    return True
        return False

    return walk(_plan(paths, list(range(len(paths))), 0), len(paths))


def _go(x: torch.Tensor, plan: list, out: list) -> None:
    """Walk the prefix tree: apply each op to its rows, hand each finished row its output.

    A module-level function, not a closure that names itself: such a closure is a reference cycle
    that keeps each step's outputs and autograd graph alive until the cyclic collector runs
    (about 300 MB for a ResNet batch, benchmarks/memory.py).
    """
    for item in plan:
        if len(item) == 2:
            r, pos = item
            out[r] = x[pos]
        else:
            op, positions, sub = item
            _go(op.fn(_take(x, positions)), sub, out)


def run_paths(x: torch.Tensor, paths: Sequence[Sequence[Op]]) -> list[torch.Tensor]:
    """Evaluate ``paths[i]`` on row ``i`` of ``x``, sharing common prefixes; returns one tensor per row (no batch dim)."""
    torch._assert(x.shape[0] == len(paths), f"{x.shape[0]} rows but {len(paths)} paths")
    out: list = [None] * len(paths)
    _go(x, _plan(paths, list(range(len(paths))), 0), out)
    return out


def forward_tap(lm: LoadedModel, x: torch.Tensor, tap: str, **kw) -> torch.Tensor:
    """Convenience: one tap's output for a whole batch ``x``, shape ``(B, ...)``."""
    path = tap_path(lm, tap, **kw)
    for op in path:
        x = op.fn(x)
    return x
