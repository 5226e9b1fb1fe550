"""The shared model pool: every session's models, built once, read-only, least recently used first.

:func:`load_model` turns a :class:`vitrep.models.registry.ModelRef` into a
shared :class:`vitrep.models.weights.LoadedModel` (eval mode,
``requires_grad`` off) on a device, built once per process while it stays
in the pool.  With a memory budget (:mod:`vitrep.limits`) the least recently
used CPU models are evicted, with their oneDNN packs, before a new one is
built, until its estimate (:func:`vitrep.models.sizes.model_bytes`) fits; a
model alone over the budget is refused in one sentence.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import torch
from torch import nn

from .. import limits
from ..fast import linear as fastops
from . import sizes
from .registry import ModelRef, resolve_device
from .weights import LoadedModel, build_model


# The shared models, least recently used first.  With a memory budget (vitrep/limits.py) the CPU
# models and their packs stay within it: a new model evicts from the front before it is built.
# _LOCK guards the cache itself and is held only for dictionary work, never through a build: a
# model is built under its own key's lock (_BUILDS), so a cached lookup never waits for another
# model's build, and two callers asking for one new model build it once.  A build under way
# reserves its estimate (_PENDING) so that concurrent builds together stay within the budget.
_MODELS: "OrderedDict[tuple, LoadedModel]" = OrderedDict()


_LOCK = threading.Lock()


_BUILDS: dict[tuple, list] = {}  # key -> [its build lock, callers holding or waiting for it]


_PENDING: dict[tuple, int] = {}  # key -> bytes reserved while it is built


_BF16: set[tuple] = set()  # keys of the models asked for in bf16: their bf16 weights are counted beside them


log = logging.getLogger("vitrep")


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def held_bytes(lm: LoadedModel) -> int:
    """What a loaded model holds now: parameters, buffers and the oneDNN packs of its weights."""
    return module_bytes(lm.module) + fastops.pack_bytes(lm.module.parameters())


def reserved_bytes(lm: LoadedModel) -> int:
    """What a cached CPU model holds, or will hold once its packs are made: the more of
    :func:`held_bytes` and the estimate :func:`vitrep.models.sizes.model_bytes` (a GPU model: 0,
    the memory budget counts host memory)."""
    if lm.device.type != "cpu":
        return 0
    bf16 = (lm.ref, str(lm.device)) in _BF16
    return max(held_bytes(lm), sizes.model_bytes(lm.ref, fast=fastops.enabled(), bf16=bf16))


def cached_models() -> list[tuple[LoadedModel, int]]:
    """The cached models, least recently used first, each with :func:`held_bytes`."""
    with _LOCK:
        return [(lm, held_bytes(lm)) for lm in _MODELS.values()]


def cache_bytes() -> int:
    """What the cached CPU models hold or will hold once used (:func:`reserved_bytes`), all together."""
    with _LOCK:
        return sum(reserved_bytes(lm) for lm in _MODELS.values())


def is_cached(ref: ModelRef, device: str | torch.device = "auto") -> bool:
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return (ref, str(dev)) in _MODELS


def _evict(key: tuple, why: str) -> int:
    """Forget a cached model and drop its packs; whoever still uses it keeps it alive until done."""
    lm = _MODELS.pop(key)
    _BF16.discard(key)
    size = module_bytes(lm.module)
    freed = size + fastops.drop_packs(lm.module.parameters())
    log.info("evicted %s (%.0f MB) %s", lm.ref.label(), freed / 2 ** 20, why)
    return freed


def evict_models() -> int:
    """Forget every cached model (bytes they held); the next :func:`load_model` builds afresh."""
    with _LOCK:
        return sum(_evict(k, "on request") for k in list(_MODELS))


def _make_room(ref: ModelRef, key: tuple) -> None:
    """Evict least recently used CPU models until ``ref``'s estimate fits the budget beside the cached models
    and the builds under way; refuse a model alone over it.  Reserves ``ref``'s estimate under ``key``
    (:data:`_PENDING`) until its build ends.  Called with :data:`_LOCK` held."""

    limit = limits.memory_budget_bytes()
    if limit is None:
        return
    need = sizes.model_bytes(ref, fast=fastops.enabled(), bf16=key in _BF16)  # a CPU model: packs when the path is on
    if need > limit:
        raise sizes.MemoryBudgetError(sizes.too_big(ref, need, limit) +
                                       "; set VITREP_MEMORY_MB higher (or to 'unlimited') to run it.")
    for k in list(_MODELS):
        if sum(reserved_bytes(lm) for lm in _MODELS.values()) + sum(_PENDING.values()) + need <= limit:
            break
        if _MODELS[k].device.type == "cpu":
            _evict(k, f"to make room for {ref.label()} (about {need / 2 ** 20:.0f} MB; memory budget {limit / 2 ** 20:.0f} MB)")
    _PENDING[key] = need


def load_model(ref: ModelRef, device: str | torch.device = "auto", progress: bool = False,
               precision: str = "fp32") -> LoadedModel:
    """The shared, frozen model for ``ref`` on ``device`` (built once per process while it stays cached).

    With a memory budget (``VITREP_MEMORY_MB``, see :mod:`vitrep.limits`) the
    least recently used CPU models are evicted, before this one is built, until
    it fits; a model alone over the budget raises :class:`vitrep.models.sizes.MemoryBudgetError`.
    A cached model is returned at once, even while another model is being
    built; concurrent callers asking for the same new model build it once.
    ``precision`` ``bf16``: the model's bf16 weights (cast at first use, kept
    beside it, :func:`vitrep.fast.linear.compute`) count in its bytes from now on.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    key = (ref, str(dev))
    with _LOCK:
        if precision == "bf16":
            _BF16.add(key)
        lm = _MODELS.get(key)
        if lm is not None:
            _MODELS.move_to_end(key)
            return lm
        entry = _BUILDS.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:  # one build of this key at a time; other keys and cached lookups go on
            with _LOCK:
                lm = _MODELS.get(key)
                if lm is not None:  # built by the caller we waited for
                    _MODELS.move_to_end(key)
                    return lm
                if dev.type == "cpu":
                    _make_room(ref, key)  # before building: the evicted models' memory is free for this one
                budgeted = key in _PENDING
            try:
                if budgeted:
                    sizes.release()  # what the evicted models (and earlier runs) leave goes back first
                module, identity = build_model(ref, progress)
                module.eval().requires_grad_(False).to(dev)
            finally:
                with _LOCK:
                    _PENDING.pop(key, None)
            with _LOCK:
                lm = _MODELS[key] = LoadedModel(ref, module, identity, dev)
            log.info("built %s on %s (%.0f MB)", ref.label(), dev, module_bytes(module) / 2 ** 20)
            return lm
    finally:
        with _LOCK:
            entry[1] -= 1
            if entry[1] == 0:
                _BUILDS.pop(key, None)

