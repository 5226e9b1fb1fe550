"""CPU fast path for ResNet-50: batch norm folded into packed oneDNN convolutions, channels-last.

The plain ResNet step runs every convolution through PyTorch's default CPU
route, which lays the frozen weight out again on every call, forward and
backward, then a separate batch norm and ReLU with their own backwards.  Here,
once per block and cached:

- each batch norm (eval mode: running statistics) is folded into the
  convolution before it: ``W' = W * g / sqrt(v + eps)``, ``b' = beta - m * g /
  sqrt(v + eps)`` (computed in float64, stored in float32);
- ``W'`` is reordered once into oneDNN's blocked layout for the forward
  convolution and once for the transposed convolution that gives the input
  gradient (``dx = conv_transpose(dy, W')``; the parameters get no gradient);
- activations stay channels-last (NHWC), oneDNN's native layout;
- the ReLU is fused into the convolution, and the last convolution of a block
  also adds the residual before its ReLU (one oneDNN call);
- each bottleneck is one autograd node that keeps only its three ReLU outputs
  (the masks the backward needs).

The stem's 7x7 stride-2 convolution has 3 output channels in its backward (the
image), where oneDNN's transposed convolution is slow; its input gradient is
computed as one stride-1 convolution onto the 4 phases of the stride (12
channels, padded to 16), then interleaved: the same sum, 2.5x faster.

The result differs from the plain path by float rounding only (reordered sums,
the folded weights rounded once).  Through this untrained ResNet's ReLU and
max-pool kinks such differences grow along a trajectory, so the bar for this
path is one step's input gradient (within 1e-5 relative of the plain path's,
where both take the same ReLU branches: see :func:`same_branch_plain`) and the
ends of 300-step runs (final distances within 1%, or within the plain path's
own spread where that is larger, and the same success); tests/test_resnet_fast.py,
benchmarks/bench.py and README.md (Performance).

The path follows :mod:`vitrep.fast.linear`: float32 CPU tensors only, off with
``VITREP_FAST=0``, the packs (two copies of each convolution weight) counted
in ``VITREP_FAST_BUDGET_MB`` and dropped with the model's other packs
(:func:`vitrep.fast.linear.drop_packs`); a block whose packs do not fit, a model in
training mode, or a block of another shape runs the plain way.

Hooks (the ResNet adapter, :mod:`vitrep.models.families.resnet`, when ``fast``)::

    stem = resnet_fast.fast_stem(m)            # conv1 + bn1 + relu + maxpool, one op
    y = resnet_fast.fast_block(blk, x, removed)  # a Bottleneck ("skip" in removed: no residual); None: run it plainly
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import linear as fastops

CL = torch.channels_last
_PROBE: Optional[bool] = None


def _probe() -> bool:
    """True where oneDNN's packed convolutions exist and reproduce ``F.conv2d`` (checked once per process)."""
    global _PROBE
    if _PROBE is None:
        try:
            mk = torch.ops.mkldnn
            g = torch.Generator().manual_seed(0)
            w, b = torch.randn(8, 4, 3, 3, generator=g), torch.randn(8, generator=g)
            x = torch.randn(2, 4, 9, 9, generator=g).contiguous(memory_format=CL)
            dy = torch.randn(2, 8, 5, 5, generator=g).contiguous(memory_format=CL)
            y = mk._convolution_pointwise(x, mk._reorder_convolution_weight(w, [1, 1], [2, 2], [1, 1], 1, None),
                                          b, [1, 1], [2, 2], [1, 1], 1, "none", [], "")
            wt = mk._reorder_convolution_transpose_weight(w, [1, 1], [0, 0], [2, 2], [1, 1], 1, None)
            dx = mk._convolution_transpose_pointwise(dy, wt, None, [1, 1], [0, 0], [2, 2], [1, 1], 1, "none", [], "")
            ref = torch.ops.aten.convolution_backward(dy, x, w, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                                                      [True, False, False])[0]
            y2 = mk._convolution_pointwise.binary(x, dy, mk._reorder_convolution_weight(w, [1, 1], [2, 2], [1, 1], 1, None),
                                                  b, [1, 1], [2, 2], [1, 1], 1, "add", None, "relu", [], "")
            _PROBE = bool(torch.allclose(y, F.conv2d(x, w, b, 2, 1), atol=1e-5) and torch.allclose(dx, ref, atol=1e-5)
                          and torch.allclose(y2, F.relu(F.conv2d(x, w, b, 2, 1) + dy), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _PROBE = False
    return _PROBE


def applies(x: torch.Tensor) -> bool:
    """Whether ``x`` takes this path: float32 on CPU, ``VITREP_FAST`` not 0, oneDNN convolutions present."""
    return fastops.applies(x) and _probe()


# --- folded, packed convolutions ----------------------------------------------------------------


class _Conv:
    """A convolution with the batch norm after it folded in; packed for oneDNN forward and transposed."""

    def __init__(self, conv: nn.Conv2d, bn: Optional[nn.BatchNorm2d], size: list[int], transposed: bool = True,
                 dtype: torch.dtype = torch.float32) -> None:
        """``size``: the input's shape.  oneDNN picks its kernel by the shape it is packed for; a pack made
        without one can be 20x slower at some shapes (1x1, 1024 -> 512 channels at 14x14).  ``dtype``: the
        packs' (bf16: the folded weight and bias rounded once, the products accumulated in float32)."""
        mk = torch.ops.mkldnn
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups, self.kernel = conv.groups, list(conv.kernel_size)
        w = conv.weight.detach().double()
        b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if bn is not None:
            scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = w * scale.view(-1, 1, 1, 1)
            b = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
        self.weight = w.to(dtype).contiguous()  # the stem keeps it for its phase kernel, then drops it
        self.bias = b.to(dtype)
        self.out_size = [size[0], w.shape[0]] + [(size[2 + i] + 2 * self.padding[i] - self.dilation[i] * (self.kernel[i] - 1)
                                                  - 1) // self.stride[i] + 1 for i in range(2)]
        self.fwd = mk._reorder_convolution_weight(self.weight, self.padding, self.stride, self.dilation, self.groups,
                                                  list(size))
        # A 1x1 stride-1 convolution's input gradient is the 1x1 convolution with W^T, which can also add
        # the residual's gradient in the same call; any other takes oneDNN's transposed convolution.
        self.pointwise = self.kernel == [1, 1] and self.stride == [1, 1] and self.padding == [0, 0] and self.groups == 1
        if not transposed:
            self.bwd = None
        elif self.pointwise:
            self.bwd = mk._reorder_convolution_weight(self.weight.transpose(0, 1).contiguous(), [0, 0], [1, 1], [1, 1],
                                                      1, self.out_size)
        else:
            self.bwd = mk._reorder_convolution_transpose_weight(
                self.weight, self.padding, self._out_pad(size, self.out_size), self.stride, self.dilation, self.groups,
                self.out_size)

    def _out_pad(self, size, out_size) -> list[int]:
        """The transposed convolution's output padding that gives back an input of ``size``."""
        return [size[2 + i] - ((out_size[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                               + self.dilation[i] * (self.kernel[i] - 1) + 1) for i in range(2)]

    def forward(self, x: torch.Tensor, relu: bool) -> torch.Tensor:
        """``relu?(conv(x) + b)``, channels-last."""
        return torch.ops.mkldnn._convolution_pointwise(x, self.fwd, self.bias, self.padding, self.stride, self.dilation,
                                                       self.groups, "relu" if relu else "none", [], "")

    def forward_add_relu(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``relu(conv(x) + b + other)``, one oneDNN call."""
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, self.fwd, self.bias, self.padding, self.stride,
                                                              self.dilation, self.groups, "add", None, "relu", [], "")

    def input_grad(self, dy: torch.Tensor, size: torch.Size, add: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``d/dx`` of ``conv(x)`` for an input of ``size``, given the output's gradient ``dy``; plus ``add``."""
        mk = torch.ops.mkldnn
        if self.pointwise:
            if add is not None:
                return mk._convolution_pointwise.binary(dy, add, self.bwd, None, [0, 0], [1, 1], [1, 1], 1, "add", None,
                                                        None, [], "")
            return mk._convolution_pointwise(dy, self.bwd, None, [0, 0], [1, 1], [1, 1], 1, "none", [], "")
        dx = mk._convolution_transpose_pointwise(dy, self.bwd, None, self.padding, self._out_pad(size, dy.shape),
                                                 self.stride, self.dilation, self.groups, "none", [], "")
        return dx if add is None else dx.add_(add)


def _relu_grad(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient through ``y = relu(...)``: ``dy`` where ``y > 0``, else 0 (ReLU's own backward)."""
    return torch.ops.aten.threshold_backward(dy, y, 0)


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=CL)


def _version(module: nn.Module) -> tuple:
    return tuple(t._version for t in list(module.parameters()) + list(module.buffers()))


def _packs(module: nn.Module, anchor: torch.Tensor, tag: str, make: Callable[[], object], size: int):
    """``make()`` for ``module``, cached with fastops' packs under ``anchor`` (a weight of the module)."""
    return fastops.cached_packs(anchor, tag, _version(module), make, size)


def _conv_bytes(*convs: Optional[nn.Conv2d], itemsize: int = 4) -> int:
    return sum(2 * c.weight.numel() * itemsize for c in convs if c is not None)


def _dtype() -> torch.dtype:
    """The packs' dtype for this thread's run: bf16 inside ``fastops.compute("bf16")``, else float32."""
    return torch.bfloat16 if fastops.bf16_on() else torch.float32


# --- bottleneck blocks --------------------------------------------------------------------------


class _Block:
    """A torchvision ``Bottleneck``'s three (and downsample) convolutions, folded and packed for inputs of ``size``."""

    def __init__(self, block: nn.Module, size: list[int], dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        self.c1 = _Conv(block.conv1, block.bn1, size, dtype=dtype)
        self.c2 = _Conv(block.conv2, block.bn2, self.c1.out_size, dtype=dtype)
        self.c3 = _Conv(block.conv3, block.bn3, self.c2.out_size, dtype=dtype)
        ds = block.downsample
        self.ds = None if ds is None else _Conv(ds[0], ds[1], size, dtype=dtype)
        for c in (self.c1, self.c2, self.c3, self.ds):
            if c is not None:
                del c.weight  # the packs hold it now


def _is_bottleneck(block: nn.Module) -> bool:
    ds = block.downsample
    return (not block.training and all(isinstance(getattr(block, f"conv{i}"), nn.Conv2d) for i in (1, 2, 3))
            and all(isinstance(getattr(block, f"bn{i}"), nn.BatchNorm2d) for i in (1, 2, 3))
            and (ds is None or (isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[0], nn.Conv2d)
                                and isinstance(ds[1], nn.BatchNorm2d))))


class _BottleneckFn(torch.autograd.Function):
    """One bottleneck, forward and the backward to its input (the folded weights are constants).

    In bf16 packs the block's arithmetic is bf16 (its input and gradient cast once on entry); what it
    hands on, forward and backward, is float32."""

    @staticmethod
    def forward(ctx, x, p: _Block, skip: bool):
        x = _cl(x).to(p.dtype)
        h1 = p.c1.forward(x, relu=True)
        h2 = p.c2.forward(h1, relu=True)
        if skip:
            y = p.c3.forward(h2, relu=True)
        else:
            y = p.c3.forward_add_relu(h2, x if p.ds is None else p.ds.forward(x, relu=False))
        ctx.save_for_backward(h1, h2, y)
        ctx.p, ctx.skip, ctx.size = p, skip, x.shape
        return y.float() if p.dtype != torch.float32 else y

    @staticmethod
    def backward(ctx, dy):
        h1, h2, y = ctx.saved_tensors
        p = ctx.p
        g = _relu_grad(_cl(dy).to(p.dtype), y)
        g2 = _relu_grad(p.c3.input_grad(g, h2.shape), h2)
        g1 = _relu_grad(p.c2.input_grad(g2, h1.shape), h1)
        other = None if ctx.skip else g if p.ds is None else p.ds.input_grad(g, ctx.size)
        dx = p.c1.input_grad(g1, ctx.size, other)
        return (dx.float() if p.dtype != torch.float32 else dx), None, None


def fast_block(block: nn.Module, x: torch.Tensor, removed: frozenset = frozenset()) -> Optional[torch.Tensor]:
    """A torchvision ``Bottleneck`` on ``x`` (``(B, C, H, W)``, any size), fast; ``"skip" in removed``: no residual.

    Equals the ResNet adapter's plain block forward (:mod:`vitrep.models.families.resnet`)
    to float rounding.  ``None`` where the path does not apply (see the module's
    docstring): the caller then runs the plain forward.
    """
    if not applies(x) or not _is_bottleneck(block):
        return None
    size, dtype = list(x.shape), _dtype()
    tag = f"resnet-block {size[2]}x{size[3]}" + ("" if dtype == torch.float32 else " bf16")
    p = _packs(block, block.conv1.weight, tag, lambda: _Block(block, size, dtype),
               _conv_bytes(block.conv1, block.conv2, block.conv3, block.downsample[0] if block.downsample else None,
                           itemsize=dtype.itemsize))
    if p is None:  # over the pack budget
        return None
    return _BottleneckFn.apply(x, p, "skip" in removed)


# --- the stem -----------------------------------------------------------------------------------


class _Stem:
    """``conv1`` with ``bn1`` folded in, and the polyphase kernel for its input gradient.

    With stride ``s`` and a ``k``-tap kernel, row ``i = s*I + a`` of the input
    gradient is ``sum_u dy[u] W[i + pad - s*u]``: for each phase ``a`` a
    stride-1 correlation of ``dy`` with ``ceil(k/s)`` of the taps.  The phases
    of the 3 input channels become the output channels of one convolution.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, size: list[int], dtype: torch.dtype = torch.float32) -> None:
        self.conv = _Conv(conv, bn, size, transposed=False, dtype=dtype)
        self.dtype = dtype
        s, k, p = self.conv.stride[0], self.conv.kernel[0], self.conv.padding[0]
        w = self.conv.weight  # (O, C, k, k), folded
        o, c = w.shape[:2]
        # i = s*u - p + t (t the tap); i = s*I + a, u = I - d  =>  t = s*d + a + p.
        ds = [d for d in range(-k, k + 1) if any(0 <= s * d + a + p < k for a in range(s))]
        self.lo, n = max(ds), len(ds)  # correlation tap j = lo - d, j in [0, n)
        kern = w.new_zeros(c, s, s, o, n, n)
        for a in range(s):
            for b in range(s):
                for di in ds:
                    for dj in ds:
                        ti, tj = s * di + a + p, s * dj + b + p
                        if 0 <= ti < k and 0 <= tj < k:
                            kern[:, a, b, :, self.lo - di, self.lo - dj] = w[:, :, ti, tj].t()
        self.channels = c * s * s
        kern = kern.reshape(self.channels, o, n, n)
        pad_out = -self.channels % 16  # oneDNN's blocked kernels want 16 output channels
        kern = torch.cat([kern, kern.new_zeros(pad_out, o, n, n)]).contiguous()
        self.pad = n - 1  # symmetric padding; the phase row I is output row I + (n - 1 - lo)
        self.off = n - 1 - self.lo
        self.phases = torch.ops.mkldnn._reorder_convolution_weight(kern, [self.pad] * 2, [1, 1], [1, 1], 1,
                                                                   self.conv.out_size)
        self.s, self.c = s, c
        del self.conv.weight

    def input_grad(self, g: torch.Tensor, size: torch.Size) -> torch.Tensor:
        s, c = self.s, self.c
        o = torch.ops.mkldnn._convolution_pointwise(g, self.phases, None, [self.pad] * 2, [1, 1], [1, 1], 1, "none", [], "")
        hi, wi = g.shape[2], g.shape[3]
        o = o[:, :self.channels, self.off:self.off + hi, self.off:self.off + wi]
        b = g.shape[0]
        dx = o.reshape(b, c, s, s, hi, wi).permute(0, 1, 4, 2, 5, 3).reshape(b, c, s * hi, s * wi)
        return dx[:, :, :size[2], :size[3]]


def _stem_bytes(conv: nn.Conv2d, itemsize: int = 4) -> int:
    """The stem's packs: the forward kernel, and the phase kernel (at most ``ceil(k/s) + 1`` taps a side)."""
    o, c, k, _ = conv.weight.shape
    s = conv.stride[0]
    n = -(-k // s) + 1
    return itemsize * (o * c * k * k + (c * s * s + (-c * s * s) % 16) * o * n * n)


class _StemFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p: _Stem):
        y = p.conv.forward(_cl(x).to(p.dtype), relu=True)
        ctx.save_for_backward(y)
        ctx.p, ctx.size = p, x.shape
        return y.float() if p.dtype != torch.float32 else y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dx = ctx.p.input_grad(_relu_grad(_cl(dy).to(y.dtype), y), ctx.size)
        return dx.float().contiguous(), None


def fast_stem(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``maxpool(relu(bn1(conv1(x))))`` of a torchvision ResNet, fast where it applies; channels-last output."""
    conv, bn = model.conv1, model.bn1

    def plain(x: torch.Tensor) -> torch.Tensor:
        return model.maxpool(F.relu(bn(conv(x))))

    def f(x: torch.Tensor) -> torch.Tensor:
        if not applies(x) or model.training or conv.stride[0] != conv.stride[1] or conv.kernel_size[0] != conv.kernel_size[1] \
                or conv.padding[0] != conv.padding[1] or conv.dilation != (1, 1) or conv.groups != 1:
            return plain(x)
        size, dtype = list(x.shape), _dtype()
        tag = f"resnet-stem {size[2]}x{size[3]}" + ("" if dtype == torch.float32 else " bf16")
        p = fastops.cached_packs(conv.weight, tag, _version(conv) + _version(bn), lambda: _Stem(conv, bn, size, dtype),
                                 _stem_bytes(conv, dtype.itemsize))
        if p is None:
            return plain(x)
        return model.maxpool(_StemFn.apply(x, p))

    return f


# --- checking -----------------------------------------------------------------------------------


def same_branch_plain(model: nn.Module, x: torch.Tensor, fast_out: torch.Tensor, removed: frozenset = frozenset()
                      ) -> torch.Tensor:
    """The plain formula for ``fast_out`` (a layer tap's output from this path on ``x``), with every ReLU and
    max-pool taking the branch the fast path took.

    torchvision's own convolution and batch-norm modules, NCHW, so the arithmetic is the plain path's; the
    ReLU masks and max-pool picks are read from the fast path's autograd nodes under ``fast_out`` (call it
    before any backward through them).  A ReLU whose input is within rounding of 0 can take the other branch
    on the plain path, which alone moves the whole input gradient by about 1/sqrt(units) (1e-4 to 5e-3 at
    224 px); against this reference the fast path's gradient shows its rounding only (tests, benchmarks).
    """
    nodes, fn = [], fast_out.grad_fn
    while fn is not None:
        name = type(fn).__name__
        if "BottleneckFn" in name or "StemFn" in name:
            nodes.append(fn.saved_tensors)
        fn = fn.next_functions[0][0] if fn.next_functions else None
    nodes = nodes[::-1]
    blocks = [b for s in (1, 2, 3, 4) for b in getattr(model, f"layer{s}")][:len(nodes) - 1]
    (stem_y,) = nodes[0]
    a = model.bn1(model.conv1(x)) * (stem_y > 0)
    _, idx = F.max_pool2d_with_indices(stem_y, model.maxpool.kernel_size, model.maxpool.stride, model.maxpool.padding)
    x = a.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
    for blk, (h1, h2, y) in zip(blocks, nodes[1:]):
        t = blk.bn1(blk.conv1(x)) * (h1 > 0)
        t = blk.bn2(blk.conv2(t)) * (h2 > 0)
        t = blk.bn3(blk.conv3(t))
        if "skip" not in removed:
            t = t + (x if blk.downsample is None else blk.downsample(x))
        x = t * (y > 0)
    return x
