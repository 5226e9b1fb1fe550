"""timm's convolutional networks: ``ResNet`` and ``ConvNeXt``, stages of residual blocks.

- ``ResNet``: taps ``conv1``, ``stem``, ``layer1``-``layer4``, ``block-k``
  (the k-th residual block overall), ``pool``, ``logits``; component ``skip``;
- ``ConvNeXt``: taps ``stem``, ``stage-1``-``stage-4``, ``block-k``, ``norm``,
  ``logits``; components ``token_mixing`` (the depthwise convolution),
  ``norm``, ``mlp``, ``residual``.
"""

from __future__ import annotations

import re

from torch import nn

from ...errors import ConfigError
from .base import Family, Op
from .timm_base import PerModel


class _Staged(PerModel, Family):
    """Networks of stages of residual blocks: taps after each stage (``layerS`` / ``stage-S``) or block
    (``block-k``, counting every block in order); block numbers of a surgery count the same way."""

    unit = "block"
    stage_tap = "layer"
    layout: tuple = ()

    def setup(self, module):
        self.layout = tuple(len(s) for s in self.stages(module))

    def stages(self, m) -> list:
        raise NotImplementedError

    def depth(self, module):
        return sum(len(s) for s in self.stages(module))

    def _ends(self) -> list[int]:
        out, n = [], 0
        for k in self.layout:
            n += k
            out.append(n)
        return out

    def sweep_taps(self, depth):
        return [f"{self.stage_tap}{'-' if self.stage_tap == 'stage' else ''}{s}" for s in range(1, len(self.layout) + 1)]

    def default_layer(self, depth):
        return self.sweep_taps(depth)[0]

    def parse_tap(self, text, depth):
        t = str(text).strip().lower().replace("_", "-").replace(" ", "-")
        t = {"head": "logits", "output": "logits"}.get(t, t)
        if t in self._named():
            return t
        m = re.fullmatch(r"(?:layer|stage)-?(\d+)", t)
        if m and 1 <= int(m.group(1)) <= len(self.layout):
            return self.sweep_taps(depth)[int(m.group(1)) - 1]
        m = re.fullmatch(r"(?:block-?)?(\d+)", t)
        if m and 1 <= int(m.group(1)) <= depth:
            return f"block-{int(m.group(1))}"
        raise ConfigError(f"{text!r} is not a layer of this model; use {', '.join(self._named())}, "
                          f"{self.sweep_taps(depth)[0]}-{len(self.layout)} or block-1..{depth}.")

    def taps(self, depth):
        return self._named()[:-2] + self.sweep_taps(depth) + [f"block-{k}" for k in range(1, depth + 1)] + \
            self._named()[-2:]

    def picker_taps(self, depth):
        return [t for t in self.taps(depth) if not t.startswith("block-")]

    def taps_summary(self, depth):
        return f"{', '.join(self._named())}, {self.sweep_taps(depth)[0]}-{len(self.layout)}, block-1..{depth}"

    def tap_depth(self, tap: str, depth: int) -> int:
        """Calibration bands count stages (as for torchvision's ResNet-50): 0 before the first, S in stage S."""
        if tap in ("conv1", "stem"):
            return 0
        if tap in ("pool", "logits", "norm"):
            return len(self.layout) + 1
        k = self._last_block(tap, depth)
        return next(s for s, end in enumerate(self._ends(), 1) if k <= end)

    def _last_block(self, tap: str, depth: int) -> int:
        if tap.startswith("block-"):
            return int(tap.split("-")[1])
        s = int(re.search(r"(\d+)$", tap).group(1))
        return self._ends()[s - 1]


class TimmResNet(_Staged):
    """timm's ``ResNet`` (and its variants with the same block layout)."""

    components = ("skip",)
    component_aliases = {"residual": "skip", "residual_1": "skip", "residual_2": "skip"}
    swap_aliases = {"stem": "conv1", "head": "fc"}
    first_conv = "conv1"
    classifier = "fc"
    calibration = "resnet"

    def stages(self, m):
        return [m.layer1, m.layer2, m.layer3, m.layer4]

    def _named(self):
        return ["conv1", "stem", "pool", "logits"]

    def stem_weight(self, module):
        c = module.conv1
        return (c[0] if isinstance(c, nn.Sequential) else c).weight

    def block_forward(self, block, x, removed, fast=False, **kw):
        if not removed:
            return block(x)
        kind = type(block).__name__
        if kind == "Bottleneck":
            y = block.act1(block.bn1(block.conv1(x)))
            y = block.aa(block.act2(block.drop_block(block.bn2(block.conv2(y)))))
            y = block.bn3(block.conv3(y))
            last = block.act3
        elif kind == "BasicBlock":
            y = block.aa(block.act1(block.drop_block(block.bn1(block.conv1(x)))))
            y = block.bn2(block.conv2(y))
            last = block.act2
        else:
            raise ConfigError(f"vitrep cannot remove the skip connection of a timm {kind} block.")
        if block.se is not None:
            y = block.se(y)
        return last(y)  # no shortcut added

    def path(self, lm, tap, surgery, pos_embed, fast):
        m = lm.module
        ops = [Op(("conv1",), m.conv1)]
        if tap == "conv1":
            return ops
        ops += [Op(("bn1act",), lambda x: m.act1(m.bn1(x))), Op(("maxpool",), m.maxpool)]
        if tap == "stem":
            return ops
        last = self._last_block(tap, self.depth(m)) if tap not in ("pool", "logits") else self.depth(m)
        ops += _block_ops(self, self.stages(m), surgery, last)
        if tap in ("pool", "logits"):
            ops.append(Op(("pool",), m.global_pool))
            if tap == "logits":
                ops.append(Op(("fc",), m.fc))
        return ops

    def packable_bytes(self, module):
        return 0


class TimmConvNeXt(_Staged):
    """timm's ``ConvNeXt``: ``x + gamma * mlp(norm(conv_dw(x)))`` in blocks, a downsampling layer before each stage."""

    stage_tap = "stage"
    components = ("token_mixing", "norm", "mlp", "residual")
    component_aliases = {"attention": "token_mixing", "conv_dw": "token_mixing", "ln_1": "norm",
                         "residual_1": "residual", "skip": "residual"}
    swap_aliases = {"stem": "stem", "final_norm": "head.norm", "head": "head.fc"}
    first_conv = "stem.0"
    classifier = "head.fc"
    calibration = "convnext"

    def stages(self, m):
        return [s.blocks for s in m.stages]

    def _named(self):
        return ["stem", "norm", "logits"]

    def canonical_component(self, name):
        c = super().canonical_component(name)
        if c in ("ln_2", "residual_2"):
            raise ConfigError(f"A ConvNeXt block has one norm and one residual connection, so it has no {name}; "
                              f"choose from {', '.join(self.components)}.")
        return c

    def block_forward(self, block, x, removed, fast=False, **kw):
        if not removed:
            return block(x)
        y = x if "token_mixing" in removed else block.conv_dw(x)
        if block.use_conv_mlp:
            y = y if "norm" in removed else block.norm(y)
            y = y if "mlp" in removed else block.mlp(y)
        else:
            y = y.permute(0, 2, 3, 1)  # (B, H, W, C)
            y = y if "norm" in removed else block.norm(y)
            y = y if "mlp" in removed else block.mlp(y)
            y = y.permute(0, 3, 1, 2)
        if block.gamma is not None and "mlp" not in removed:
            y = y.mul(block.gamma.reshape(1, -1, 1, 1))
        return y if "residual" in removed else y + block.shortcut(x)

    def path(self, lm, tap, surgery, pos_embed, fast):
        m = lm.module
        ops = [Op(("stem",), m.stem)]
        if tap == "stem":
            return ops
        last = self._last_block(tap, self.depth(m)) if tap not in ("norm", "logits") else self.depth(m)
        ops += _block_ops(self, self.stages(m), surgery, last, downsample=[s.downsample for s in m.stages])
        if tap in ("norm", "logits"):
            ops.append(Op(("norm_pre",), m.norm_pre))
            if tap == "logits":
                ops.append(Op(("head",), m.forward_head))
        return ops

    def packable_bytes(self, module):
        return 0


def _block_ops(adapter, stages, surgery, last: int, downsample=None) -> list[Op]:
    """Every block up to ``last`` (counting across stages), each with its stage's downsampling before its first."""
    ops, k = [], 0
    for s, blocks in enumerate(stages):
        for b, blk in enumerate(blocks):
            k += 1
            if k > last:
                return ops
            rm = surgery.removed_in(k)
            pre = downsample[s] if downsample is not None and b == 0 else None

            def fn(x, blk=blk, rm=rm, pre=pre):
                return adapter.block_forward(blk, pre(x) if pre is not None else x, rm)

            ops.append(Op(("block", k, rm), fn))
    return ops
