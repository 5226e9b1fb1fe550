"""CPU fast path for frozen linear layers: oneDNN with weights packed once.

A reconstruction step at batch 1 multiplies a few dozen token rows by large
frozen weight matrices, forward and (to the input only) backward.  At that
shape PyTorch's default CPU route (MKL ``addmm``/``mm``) re-lays out the
weight on every call; oneDNN with the weight reordered once into its blocked
layout runs the same product 1.5-1.8x faster on the benchmark machine
(benchmarks/bench.py; its "unpacked" column is the engine without this path).

:func:`linear` is a drop-in ``F.linear`` for a weight that needs no gradient:
the forward multiplies by the packed ``W``, the backward by a packed ``W^T``
(``dx = dy W``).  Packs are made on first use and kept per weight tensor,
keyed by its identity and version, so a weight changed in place is repacked.
:func:`call` runs a module with its linear layers on this path (``Linear``,
``Sequential``, timm's ``Mlp``); anything else runs as itself.

Only float32 CPU tensors take the path, and only where a probe at first use
shows oneDNN gives ``F.linear``'s result; ``VITREP_FAST=0`` turns it off (the
plain path, for comparison).  Packs double a model's weights in memory, so
they stop at ``VITREP_FAST_BUDGET_MB`` per process (default: half of the
memory budget ``VITREP_MEMORY_MB`` where one is set, else 3072): weights
beyond it take the plain path (ViT-B/32 needs 700 MB).  :func:`pack_bytes`
and :func:`drop_packs` count and drop the packs of given weights, which the
model cache does for a model it evicts (vitrep/models/sizes.py).  Results agree
with the plain path to float rounding (tests/test_fast_paths.py).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import limits

_LOCK = threading.RLock()  # re-entrant: a weight freed while packing calls _drop on this thread
_PACKS: dict = {}  # id(weight) -> (weakref, version, W packed, W^T packed, bytes); (id, tag) -> another path's (cached_packs)
_BYTES = [0]  # bytes held in packs
_PROBE: Optional[bool] = None
_STATE = threading.local()  # this thread's compute precision (a run sets it for its duration)


def _probe() -> bool:
    """True where oneDNN's packed linear exists and reproduces ``F.linear`` (checked once per process)."""
    global _PROBE
    if _PROBE is None:
        try:
            g = torch.Generator().manual_seed(0)
            w, b, x = torch.randn(24, 16, generator=g), torch.randn(24, generator=g), torch.randn(2, 5, 16, generator=g)
            y = torch.ops.mkldnn._linear_pointwise(x, torch.ops.mkldnn._reorder_linear_weight(w), b, "none", [], "")
            _PROBE = bool(torch.backends.mkldnn.is_available() and torch.allclose(y, F.linear(x, w, b), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _PROBE = False
    return _PROBE


def enabled() -> bool:
    return os.environ.get("VITREP_FAST", "1") != "0" and _probe()


def applies(x: torch.Tensor) -> bool:
    """Whether tensors like ``x`` take the packed path (float32 on CPU, path enabled)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and enabled()


def _storages(tensors) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors if t.device.type == "cpu"}


def _matching(tensors) -> list[int]:
    """Keys of the packs made from ``tensors`` or from views of them (the patch embedding's reshaped kernel)."""
    ptrs = _storages(tensors)
    keys = []
    for key, hit in _PACKS.items():
        w = hit[0]()
        if w is not None and w.untyped_storage().data_ptr() in ptrs:
            keys.append(key)
    return keys


def pack_bytes(tensors=None) -> int:
    """Bytes held in packs: all of them, or those made from ``tensors`` (e.g. a model's parameters)."""
    with _LOCK:
        if tensors is None:
            return _BYTES[0]
        return sum(_PACKS[k][4] for k in _matching(tensors))


def drop_packs(tensors) -> int:
    """Drop the packs made from ``tensors`` (a model leaving the cache); returns the bytes given back.

    A computation still running on those weights repacks them at its next
    step, within the budget; a model that is gone gives its packs back anyway
    (each pack is dropped when its weight is freed).
    """
    with _LOCK:
        keys = _matching(tensors)
        freed = sum(_PACKS[k][4] for k in keys)
        for k in keys:
            _drop(k)
        return freed


def _drop(key: int) -> None:
    with _LOCK:
        hit = _PACKS.pop(key, None)
        if hit is not None:
            _BYTES[0] -= hit[4]


def _packs(weight: torch.Tensor) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Packed ``W`` and ``W^T`` for ``weight``, made once; None where the budget is spent."""
    key = id(weight)
    with _LOCK:
        hit = _PACKS.get(key)
        if hit is not None and (hit[0]() is not weight or hit[1] != weight._version):
            _drop(key)  # a stale pack: another tensor at this id, or this one changed in place
            hit = None
        if hit is None:
            size = 2 * weight.numel() * weight.element_size()
            if _BYTES[0] + size > limits.pack_limit_bytes():
                return None
            w = weight.detach()
            reorder = torch.ops.mkldnn._reorder_linear_weight
            hit = (weakref.ref(weight, lambda _, k=key: _drop(k)), weight._version,
                   reorder(w.contiguous()), reorder(w.t().contiguous()), size)
            _PACKS[key] = hit
            _BYTES[0] += size
        return hit[2], hit[3]


def cached_packs(weight: torch.Tensor, tag: str, version, make, size: int):
    """Another path's packs made from ``weight``: ``make()`` once, kept and counted like the linear packs.

    For :mod:`vitrep.fast.resnet` (a block's convolutions with their batch
    norms folded in, packed).  The packs are kept while ``weight`` lives and
    ``version`` (e.g. the versions of every tensor they were made from) is
    unchanged; ``size`` bytes count against :func:`vitrep.limits.pack_limit_bytes`, and
    :func:`pack_bytes` / :func:`drop_packs` of the model's parameters include
    them.  Returns None where the budget is spent.
    """
    key = (id(weight), tag)
    with _LOCK:
        hit = _PACKS.get(key)
        if hit is not None and (hit[0]() is not weight or hit[1] != version):
            _drop(key)
            hit = None
        if hit is None:
            if _BYTES[0] + size > limits.pack_limit_bytes():
                return None
            hit = (weakref.ref(weight, lambda _, k=key: _drop(k)), version, make(), None, size)
            _PACKS[key] = hit
            _BYTES[0] += size
        return hit[2]


@contextlib.contextmanager
def compute(precision: str):
    """Products on this thread in ``precision`` (``fp32`` or ``bf16``) for the duration, then as before."""
    old = getattr(_STATE, "bf16", False)
    _STATE.bf16 = precision == "bf16"
    try:
        yield
    finally:
        _STATE.bf16 = old


def bf16_on() -> bool:
    """Whether this thread's linear products run in bf16 now (inside ``compute("bf16")``)."""
    return getattr(_STATE, "bf16", False)


def _bf16_packs(weight: torch.Tensor) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """``weight`` cast to bf16 once and packed for oneDNN, ``W`` and ``W^T`` (as many bytes as one float32 copy),
    kept and counted like the float32 packs; None where the limit is spent."""
    def make():
        w = weight.detach().to(torch.bfloat16)
        reorder = torch.ops.mkldnn._reorder_linear_weight
        return reorder(w.contiguous()), reorder(w.t().contiguous())

    return cached_packs(weight, "bf16", weight._version, make, 4 * weight.numel())


class _BF16Linear(torch.autograd.Function):
    """``x W^T + b`` with a frozen bf16 ``W``: the product in bf16 (fp32 accumulation), ``x``, the output, the
    bias and the gradient to ``x`` in float32.  ``packs``: the packed ``W`` and ``W^T`` (else ``W`` in bf16,
    cast for this call)."""

    @staticmethod
    def forward(ctx, x, packs, bias):
        ctx.packs = packs
        xb = x.contiguous().to(torch.bfloat16)
        if isinstance(packs, tuple):
            y = torch.ops.mkldnn._linear_pointwise(xb, packs[0], None, "none", [], "").float()
        else:
            y = F.linear(xb, packs).float()
        return y if bias is None else y.add_(bias)

    @staticmethod
    def backward(ctx, grad):
        gb, packs = grad.contiguous().to(torch.bfloat16), ctx.packs
        if isinstance(packs, tuple):
            return torch.ops.mkldnn._linear_pointwise(gb, packs[1], None, "none", [], "").float(), None, None
        return torch.matmul(gb, packs).float(), None, None


class _PackedLinear(torch.autograd.Function):
    """``x W^T + b`` with a frozen ``W``: the gradient flows to ``x`` only."""

    @staticmethod
    def forward(ctx, x, w_packed, wt_packed, bias):
        ctx.wt_packed = wt_packed
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w_packed, bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad):
        return torch.ops.mkldnn._linear_pointwise(grad.contiguous(), ctx.wt_packed, None, "none", [], ""), None, None, None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear``, on the packed path where it applies (frozen weight, float32 CPU); in bf16 inside
    ``compute("bf16")``."""
    if bf16_on() and x.dtype == torch.float32 and not weight.requires_grad \
            and (bias is None or not bias.requires_grad):
        packs = _bf16_packs(weight) if x.device.type == "cpu" and _probe() else None
        return _BF16Linear.apply(x, packs if packs is not None else weight.detach().to(torch.bfloat16), bias)
    if weight.requires_grad or (bias is not None and bias.requires_grad) or not applies(x) \
            or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return F.linear(x, weight, bias)
    packs = _packs(weight)
    if packs is None:
        return F.linear(x, weight, bias)
    return _PackedLinear.apply(x, packs[0], packs[1], bias)


def call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with its linear layers on the packed path (``Linear``, ``Sequential``, timm ``Mlp``)."""
    if type(module) in (nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear):
        return linear(x, module.weight, module.bias)
    if isinstance(module, nn.Sequential):
        for m in module:
            x = call(m, x)
        return x
    if all(hasattr(module, a) for a in ("fc1", "act", "drop1", "norm", "fc2", "drop2")):  # timm Mlp
        for a in ("fc1", "act", "drop1", "norm", "fc2", "drop2"):
            x = call(getattr(module, a), x)
        return x
    return module(x)


def attention(mha: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Self-attention ``mha(x, x, x, need_weights=False)[0]`` for batch-first, packed projections.

    The same formula as ``F.multi_head_attention_forward`` on this path: one
    input projection to q, k, v, scaled dot-product attention per head, the
    output projection.  Falls back to the module where its options differ.
    """
    if not (mha.batch_first and mha._qkv_same_embed_dim and mha.bias_k is None and not mha.add_zero_attn
            and mha.in_proj_bias is not None):
        return mha(x, x, x, need_weights=False)[0]
    b, t, d = x.shape
    h = mha.num_heads
    qkv = linear(x, mha.in_proj_weight, mha.in_proj_bias)  # (B, T, 3D)
    q, k, v = qkv.view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, D/H)
    drop = mha.dropout if mha.training else 0.0
    o = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
    return linear(o.transpose(1, 2).reshape(b, t, d), mha.out_proj.weight, mha.out_proj.bias)
