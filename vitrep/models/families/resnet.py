"""torchvision's ResNet-50: a stem, four stages of bottleneck blocks, pooling, a classifier.

Taps: ``conv1`` (the raw first convolution), ``stem`` (conv1, bn, relu,
max-pool), ``layerS`` (after stage S = 1..4), ``layerS.B`` (after block B of
stage S), ``pool``, ``logits``; a plain number is a stage.  A bottleneck's one
removable component is ``skip``, its residual connection: the block is then
``relu(bn3(conv3(...)))`` (``residual`` names it too).  Block numbers of a
surgery count the 16 bottlenecks in order.  Any input size works.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ...fast import resnet as resnet_fast
from ...errors import ConfigError
from .base import Family, ModelSpec, Op, TrainedSource, caller

STAGES = {1: 3, 2: 4, 3: 6, 4: 3}  # bottlenecks per stage


def _resnet50(**kw):
    import torchvision.models as tvm

    return tvm.resnet50(weights=None, **kw)


class ResNet(Family):
    name = "resnet"
    unit = "layer"
    components = ("skip",)
    component_aliases = {"residual": "skip", "residual_1": "skip", "residual_2": "skip"}
    swap_aliases = {"stem": "conv1", "head": "fc"}
    first_conv = "conv1"
    classifier = "fc"
    takes_any_size = True
    specs = (
        ModelSpec("resnet50", "resnet", 224, "ResNet-50 (torchvision); 299 px also works", _resnet50,
                  depth=4, trained=TrainedSource("torchvision", "ResNet50_Weights.IMAGENET1K_V1"), label="ResNet-50"),
    )

    def taps(self, depth):
        taps = ["conv1", "stem"]
        for s, n in STAGES.items():
            taps += [f"layer{s}.{b}" for b in range(1, n + 1)] + [f"layer{s}"]
        return taps + ["pool", "logits"]

    def sweep_taps(self, depth):
        return ["conv1"] + [f"layer{s}" for s in STAGES]

    def picker_taps(self, depth):
        return [t for t in self.taps(depth) if "." not in t]  # stages, not single blocks

    def default_layer(self, depth):
        return "layer1"

    def parse_tap(self, text, depth):
        t = str(text).strip().lower().replace("_", "-").replace(" ", "-")
        t = {"head": "logits", "output": "logits"}.get(t, t)
        if t in ("conv1", "stem", "pool", "logits"):
            return t
        m = re.fullmatch(r"(?:layer)?-?(\d)(?:\.(\d+))?", t)
        if m:
            s, b = int(m.group(1)), m.group(2)
            if s in STAGES and (b is None or 1 <= int(b) <= STAGES[s]):
                return f"layer{s}" + ("" if b is None else f".{int(b)}")
        raise ConfigError(f"{text!r} is not a ResNet-50 layer; use conv1, stem, 1-4 (layer1-layer4), layer3.2, pool or logits.")

    def taps_summary(self, depth):
        return "conv1, stem, layer1-4, layerS.B, pool, logits"

    def surgery_blocks(self, depth):
        return sum(STAGES.values())

    def depth(self, module):
        return len(STAGES)

    def builder_kwargs(self, ref):
        return {}  # the input size is free

    def packable_bytes(self, module):
        """The head's packs and :mod:`vitrep.fast.resnet`'s folded convolutions (forward and transposed)."""
        return sum(mod.weight.numel() * 4 for mod in module.modules() if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)))

    def block_forward(self, block, x, removed, fast=False):
        """torchvision ``Bottleneck``; without ``skip`` the identity/downsample branch is not added.

        ``fast``: batch norm folded into packed oneDNN convolutions, channels-last (:mod:`vitrep.fast.resnet`),
        where that path applies.
        """
        if fast:
            y = resnet_fast.fast_block(block, x, removed)
            if y is not None:
                return y
        if not removed:
            return block(x)
        out = F.relu(block.bn1(block.conv1(x)))
        out = F.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
        return F.relu(out)

    def path(self, lm, tap, surgery, pos_embed, fast):
        m, call = lm.module, caller(fast)

        def block_op(s: int, b: int) -> Op:
            blk = getattr(m, f"layer{s}")[b - 1]
            rm = surgery.removed_in(sum(STAGES[i] for i in range(1, s)) + b)
            return Op(("block", s, b, rm), lambda x: self.block_forward(blk, x, rm, fast))

        ops = [Op(("conv1",), m.conv1)]
        if tap == "conv1":
            return ops
        if fast:  # conv1, bn1, relu and max-pool as one op (vitrep.fast.resnet)
            ops[-1] = Op(("stem", "fast"), resnet_fast.fast_stem(m))
        else:
            ops += [Op(("bn1relu",), lambda x: F.relu(m.bn1(x))), Op(("maxpool",), m.maxpool)]
        if tap == "stem":
            return ops
        if tap.startswith("layer"):
            s, _, b = tap[5:].partition(".")
            s, b = int(s), int(b) if b else STAGES[int(s)]
        else:
            s, b = 4, STAGES[4]
        for si in range(1, s + 1):
            for bi in range(1, (b if si == s else STAGES[si]) + 1):
                ops.append(block_op(si, bi))
        if tap.startswith("layer"):
            return ops
        ops.append(Op(("pool",), lambda x: torch.flatten(m.avgpool(x), 1)))  # (B, 2048)
        if tap == "logits":
            ops.append(Op(("fc",), lambda x: call(m.fc, x)))
        return ops
