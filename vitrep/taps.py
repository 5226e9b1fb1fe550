"""Layer taps: forward only as far as the chosen layer.

A tap is a canonical string (``encoder-3``, ``only-encoder-3``, ``layer2.1``,
...).  :func:`tap_path` turns a tap into a *path*: the list of operations from
the input image to that layer's output, each with a hashable key.
:func:`run_paths` evaluates several paths over a batch at once, sharing every
common prefix: a layer sweep runs encoder 1 once for all twelve samples,
encoder 2 for eleven, and so on, and stops each sample at its own layer.
Batch rows never interact (eval mode), so a row's result equals a lone run.

Taps per family (a plain number ``k`` means the k-th encoder/block/stage):

- ViT and ffvit: ``stem`` (patch tokens ``(B, N, D)``), ``embed`` (class token
  prepended, positions added), ``encoder-k`` (after encoders 1..k),
  ``only-encoder-k`` (embed, then encoder k alone), ``norm`` (the final
  layer norm after the last encoder), ``logits``.
- Mixer: ``stem``, ``block-k``, ``only-block-k``, ``norm``, ``logits``.
- ResNet-50: ``conv1`` (the raw first convolution), ``stem`` (conv1, bn, relu,
  max-pool), ``layerS`` (after stage S = 1..4), ``layerS.B`` (after block B of
  stage S), ``pool``, ``logits``.

``pos_embed=False`` leaves out the ViT positional embedding, as the page's
figures did (its code bypassed ``encoder.forward``); ``True`` adds it as the
model does.  Dropout is inactive in eval mode either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F

from . import fastops, resnet_fast
from .errors import ConfigError
from .models import LoadedModel
from .surgery import BLOCK_FORWARD, Surgery

RESNET_BLOCKS = {1: 3, 2: 4, 3: 6, 4: 3}


@dataclass(frozen=True)
class Op:
    key: Hashable
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __eq__(self, other):  # ops are equal when their keys are
        return isinstance(other, Op) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


def available_taps(f: str, d: int) -> list[str]:
    """Every tap of a model of family ``f`` with ``d`` encoders/blocks, in forward order."""
    if f in ("vit", "ffvit"):
        return ["stem", "embed"] + [f"encoder-{k}" for k in range(1, d + 1)] + \
            [f"only-encoder-{k}" for k in range(1, d + 1)] + ["norm", "logits"]
    if f == "mixer":
        return ["stem"] + [f"block-{k}" for k in range(1, d + 1)] + \
            [f"only-block-{k}" for k in range(1, d + 1)] + ["norm", "logits"]
    taps = ["conv1", "stem"]
    for s, n in RESNET_BLOCKS.items():
        taps += [f"layer{s}.{b}" for b in range(1, n + 1)] + [f"layer{s}"]
    return taps + ["pool", "logits"]


def layer_taps(f: str, d: int) -> list[str]:
    """The taps of a layer sweep: every encoder/block/stage output in order."""
    if f in ("vit", "ffvit"):
        return [f"encoder-{k}" for k in range(1, d + 1)]
    if f == "mixer":
        return [f"block-{k}" for k in range(1, d + 1)]
    return ["conv1"] + [f"layer{s}" for s in RESNET_BLOCKS]


def parse_tap(text: str | int, family: str, depth: int) -> str:
    """A user's layer (``1``, ``encoder 3``, ``only encoder 2``, ``final norm``, ``layer3.2``) -> canonical tap."""
    t = str(text).strip().lower().replace("_", "-").replace(" ", "-")
    t = {"final-norm": "norm", "ln": "norm", "final-ln": "norm", "head": "logits", "output": "logits"}.get(t, t)
    unit = {"vit": "encoder", "ffvit": "encoder", "mixer": "block", "resnet": "layer"}[family]
    m = re.fullmatch(r"(only-)?(?:(?:encoder|block|layer)-?)?(\d+)", t)
    if family == "resnet":
        m2 = re.fullmatch(r"(?:layer)?-?(\d)(?:\.(\d+))?", t)
        if t in ("conv1", "stem", "pool", "logits"):
            return t
        if m2:
            s, b = int(m2.group(1)), m2.group(2)
            if s in RESNET_BLOCKS and (b is None or 1 <= int(b) <= RESNET_BLOCKS[s]):
                return f"layer{s}" + ("" if b is None else f".{int(b)}")
        raise ConfigError(f"{text!r} is not a ResNet-50 layer; use conv1, stem, 1-4 (layer1-layer4), layer3.2, pool or logits.")
    if t in ("stem", "norm", "logits") or (t == "embed" and family != "mixer"):
        return t
    if m:
        k = int(m.group(2))
        if not 1 <= k <= depth:
            raise ConfigError(f"This model has {unit}s 1 to {depth}, so {unit} {k} does not exist.")
        return f"{'only-' if m.group(1) else ''}{unit}-{k}"
    extra = ", embed" if family != "mixer" else ""
    raise ConfigError(f"{text!r} is not a layer of this model; use a {unit} number 1-{depth}, only-{unit}-k, stem{extra}, norm or logits.")


def describe_tap(tap: str) -> str:
    return tap.replace("only-", "only ").replace("-", " ")


def patch_embed(m, fast: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ViT's ``_process_input`` as one matrix product.

    The stem is a convolution with kernel = stride = patch and no padding, so it
    equals cutting the image into patches and multiplying by the reshaped
    kernel.  On CPU its backward to the input is several times faster than the
    strided convolution's (benchmarks/), and the result agrees to float
    rounding (tests/test_taps.py).
    """
    conv = m.conv_proj
    p = conv.kernel_size[0]
    if conv.stride != (p, p) or conv.padding != (0, 0) or conv.kernel_size != (p, p):
        return m._process_input
    weight = conv.weight.reshape(conv.out_channels, -1)  # (D, 3*p*p)

    def f(x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        torch._assert(h == m.image_size and w == m.image_size,
                      f"Expected {m.image_size}x{m.image_size} input, got {h}x{w}")
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)
        return (fastops.linear if fast else F.linear)(patches, weight, conv.bias)  # (B, N, D), tokens in the conv's row-major order

    return f


def _normalize_op(lm: LoadedModel) -> Op:
    mean = torch.tensor(lm.spec.mean, device=lm.device).view(1, 3, 1, 1)
    std = torch.tensor(lm.spec.std, device=lm.device).view(1, 3, 1, 1)
    return Op(("normalize",), lambda x: (x - mean) / std)


def tap_path(lm: LoadedModel, tap: str, surgery: Surgery = Surgery(), pos_embed: bool = True,
             normalize: bool = False, fast: bool | None = None) -> list[Op]:
    """The operations from image to ``tap``; keys include surgery so differing rows split.

    ``fast`` (default: on for a CPU model unless ``VITREP_FAST=0``) runs linear
    layers on :mod:`vitrep.fastops`' packed path; the result is the same up to
    float rounding.
    """
    m, fam = lm.module, lm.family
    block_fwd = BLOCK_FORWARD[fam]
    if fast is None:
        fast = lm.device.type == "cpu" and fastops.enabled()
    call = fastops.call if fast else (lambda mod, v: mod(v))
    ops: list[Op] = [_normalize_op(lm)] if normalize else []

    if fam == "resnet":
        def block_op(s: int, b: int) -> Op:
            blk = getattr(m, f"layer{s}")[b - 1]
            rm = surgery.removed_in(sum(RESNET_BLOCKS[i] for i in range(1, s)) + b)
            if fast:  # folded, packed, channels-last (vitrep.resnet_fast)
                return Op(("block", s, b, rm), lambda x: resnet_fast.fast_block(blk, x, rm))
            return Op(("block", s, b, rm), lambda x: block_fwd(blk, x, rm, fast))

        ops.append(Op(("conv1",), m.conv1))
        if tap == "conv1":
            return ops
        if fast:  # conv1, bn1, relu and max-pool as one op (vitrep.resnet_fast)
            ops[-1] = Op(("stem", "fast"), resnet_fast.fast_stem(m))
        else:
            ops += [Op(("bn1relu",), lambda x: F.relu(m.bn1(x))), Op(("maxpool",), m.maxpool)]
        if tap == "stem":
            return ops
        if tap.startswith("layer"):
            s, _, b = tap[5:].partition(".")
            s, b = int(s), int(b) if b else RESNET_BLOCKS[int(s)]
        else:
            s, b = 4, RESNET_BLOCKS[4]
        for si in range(1, s + 1):
            for bi in range(1, (b if si == s else RESNET_BLOCKS[si]) + 1):
                ops.append(block_op(si, bi))
        if tap.startswith("layer"):
            return ops
        ops.append(Op(("pool",), lambda x: torch.flatten(m.avgpool(x), 1)))  # (B, 2048)
        if tap == "logits":
            ops.append(Op(("fc",), lambda x: call(m.fc, x)))
        return ops

    if fam == "mixer":
        blocks = list(m.blocks)
        ops.append(Op(("stem",), m.stem))  # (B, N, D)
        if tap == "stem":
            return ops
    else:  # vit, ffvit
        blocks = list(m.encoder.layers)
        ops.append(Op(("patchify",), patch_embed(m, fast)))  # (B, N, D)
        if tap == "stem":
            return ops

        def embed(x):
            x = torch.cat([m.class_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1+N, D)
            return x + m.encoder.pos_embedding if pos_embed else x

        ops.append(Op(("embed", pos_embed), embed))
        if tap == "embed":
            return ops

    def block_op(k: int) -> Op:
        blk, rm = blocks[k - 1], surgery.removed_in(k)
        return Op(("block", k, rm), lambda x: block_fwd(blk, x, rm, fast))

    if tap.startswith("only-"):
        k = int(tap.rsplit("-", 1)[1])
        ops.append(Op(("only",), lambda x: x))  # keeps "only k" apart from "after k" in the prefix tree
        ops.append(block_op(k))
        return ops
    last = int(tap.rsplit("-", 1)[1]) if tap[0] in "eb" else len(blocks)
    ops += [block_op(k) for k in range(1, last + 1)]
    if tap.startswith(("encoder-", "block-")):
        return ops
    norm = m.norm if fam == "mixer" else m.encoder.ln
    ops.append(Op(("norm",), norm))
    if tap == "logits":
        if fam == "mixer":
            ops.append(Op(("head",), lambda x: call(m.head, x.mean(dim=1))))  # timm: average tokens, then head
        else:
            ops.append(Op(("head",), lambda x: call(m.heads, x[:, 0])))  # class token
    return ops


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
