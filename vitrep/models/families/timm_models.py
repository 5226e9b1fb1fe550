"""Any timm model by name (``timm:NAME``): adapters for the timm classes whose blocks vitrep can take apart.

``timm:vit_small_patch16_224.dino``, ``timm:vit_base_patch16_clip_224.openai``,
``timm:eva02_tiny_patch14_224.mim_in22k``, ``timm:resmlp_12_224``,
``timm:convnext_tiny``, ...: :func:`timm_spec` builds the architecture on
torch's ``meta`` device (shapes only) to learn its class, depth and its
``pretrained_cfg`` (input size, normalisation, Hugging Face repository), and
registers one adapter instance for that model, which knows its layout
(blocks per stage).  Supported classes (:data:`SUPPORTED`):

- ``VisionTransformer`` (DeiT, DINO/DINOv2, CLIP image towers, registers,
  layer scale, pre-norm): taps ``stem``, ``embed``, ``encoder-k``,
  ``only-encoder-k``, ``norm``, ``logits``; the ViT's six components, the
  layer scales going with their branch;
- ``Eva`` (rotary position embedding inside attention): the same;
- ``MlpMixer`` with Mixer or ResMLP blocks: the Mixer's six components
  (:mod:`.mixer`); gMLP blocks, whose one residual branch holds the token
  mixing inside its gated MLP: ``norm_1``, ``gated_mlp``, ``residual_1``;
- ``ResNet``: ``conv1``, ``stem``, ``layer1``-``layer4``, ``block-k``
  (the k-th residual block overall), ``pool``, ``logits``; ``skip``;
- ``ConvNeXt``: ``stem``, ``stage-1``-``stage-4``, ``block-k``, ``norm``,
  ``logits``; components ``token_mixing`` (the depthwise convolution),
  ``norm``, ``mlp``, ``residual``.

A component a block does not have is refused in one sentence.  Trained
weights come through timm's own Hugging Face repository for the name (the
standard cache), or a local file (``--weights FILE``).
"""

from __future__ import annotations

import functools
import re

import torch
from torch import nn

from ...errors import ConfigError
from .base import VIT_COMPONENTS, Family, ModelSpec, Op, TokenFamily, TrainedSource, patch_product, register_model_adapter
from .mixer import Mixer

PREFIX = "timm:"
SUPPORTED = ("VisionTransformer", "Eva", "MlpMixer", "ResNet", "ConvNeXt")


def is_timm(name: str) -> bool:
    return str(name).startswith(PREFIX)


@functools.lru_cache(maxsize=None)
def timm_spec(name: str) -> ModelSpec:
    """The spec of ``timm:NAME`` (built once per process), or one sentence on why it cannot be used."""
    import timm

    arch = name[len(PREFIX):]
    if not arch or not timm.is_model(arch):
        raise ConfigError(f"timm has no model called {arch!r}; `python -m vitrep models --timm TEXT` lists matches.")
    try:
        with torch.device("meta"):
            m = timm.create_model(arch, pretrained=False)
    except Exception as e:  # noqa: BLE001 - any build failure of a third-party model is the user's one sentence
        raise ConfigError(f"timm could not build {arch}: {str(e).splitlines()[0]}.") from None
    kind = type(m).__name__
    adapter_cls = _ADAPTERS.get(kind)
    if adapter_cls is None:
        raise ConfigError(f"{arch} is a timm {kind}, which vitrep cannot take apart; the supported timm classes are "
                          f"{', '.join(SUPPORTED)}.")
    if kind == "MlpMixer" and type(m.blocks[0]).__name__ == "SpatialGatingBlock":
        adapter_cls = GMLP
    adapter = adapter_cls.for_model(f"{PREFIX}{arch}", m)
    cfg = m.pretrained_cfg or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    hub = cfg.get("hf_hub_id")
    trained = TrainedSource("timm", hub) if hub and _has_tag(arch) else None
    spec = ModelSpec(name, adapter.name, size, f"timm {arch} ({kind}, untrained unless trained weights are asked for)",
                     functools.partial(_build, arch), mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                     std=tuple(cfg.get("std", (0.229, 0.224, 0.225))), trained=trained, depth=adapter.depth(m),
                     label=arch)
    adapter.specs = (spec,)
    register_model_adapter(adapter)
    return spec


def _has_tag(arch: str) -> bool:
    """timm's default weights exist for ``arch`` (with or without a tag)."""
    import timm

    return bool(timm.list_pretrained(arch.split(".")[0] + "*")) or "." in arch


def _build(arch: str, **kw) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, **kw)


def search(text: str, limit: int = 50) -> list[str]:
    """timm model names containing ``text`` (with their weight tags), prefixed ``timm:``."""
    import timm

    pattern = f"*{text.strip()}*" if text.strip() else "*"
    return [PREFIX + n for n in timm.list_models(pattern, pretrained=True)][:limit]


class _PerModel:
    """An adapter instance made for one timm model: its name is the model's, its layout read off the module."""

    @classmethod
    def for_model(cls, name: str, module: nn.Module):
        a = cls()
        a.name = name
        a.setup(module)
        return a

    def setup(self, module: nn.Module) -> None:
        pass

    def builder_kwargs(self, ref) -> dict:
        spec = ref.spec
        return {"img_size": ref.size} if ref.size not in (None, spec.size) else {}


# --- Vision Transformers ------------------------------------------------------------------------------

class TimmViT(_PerModel, TokenFamily):
    """timm's ``VisionTransformer``: class token, registers, positions added before or after them, pre-norm.

    Block::

        x = x + ls1(attn(norm1(x)))     # ln_1, attention, residual_1
        x = x + ls2(mlp(norm2(x)))      # ln_2, mlp, residual_2
    """

    unit = "encoder"
    components = VIT_COMPONENTS
    swap_aliases = {"stem": "patch_embed", "pos_embedding": "pos_embed", "class_token": "cls_token",
                    "ln_1": "blocks.0.norm1", "final_norm": "norm", "head": "head"}
    first_conv = "patch_embed.proj"
    classifier = "head"
    calibration = "vit"

    def blocks(self, m):
        return list(m.blocks)

    def stem_op(self, m, size, fast):
        pe = m.patch_embed
        if not isinstance(pe.norm, nn.Identity) or getattr(pe, "dynamic_img_pad", False) or not pe.flatten:
            return pe
        return patch_product(pe.proj, size, pe, fast)

    def embed_op(self, m, pos_embed):
        def embed(x):  # (B, N, D) -> (B, prefix + N, D), then the pre-norm (CLIP)
            front = [t.expand(x.shape[0], -1, -1) for t in (m.cls_token, getattr(m, "reg_token", None)) if t is not None]
            pe = m.pos_embed if pos_embed else None
            if getattr(m, "no_embed_class", False):
                x = x + pe if pe is not None else x
                x = torch.cat(front + [x], dim=1) if front else x
            else:
                x = torch.cat(front + [x], dim=1) if front else x
                x = x + pe if pe is not None else x
            return m.norm_pre(x)

        return embed

    def norm(self, m):
        return m.norm

    def head_op(self, m, fast):
        return m.forward_head  # timm's pooling (token, avg, map), fc_norm and head

    def block_forward(self, block, x, removed, fast=False, **kw):
        if not removed:
            return block(x, **kw)
        inp = x  # (B, T, D)
        h = x if "ln_1" in removed else block.norm1(x)
        if "attention" not in removed:
            h = _scale(block, 1, block.attn(h, **kw))
        x = h if "residual_1" in removed else inp + h
        y = x if "ln_2" in removed else block.norm2(x)
        if "mlp" not in removed:
            y = _scale(block, 2, block.mlp(y))
        return y if "residual_2" in removed else x + y

    def packable_bytes(self, module):
        return 0  # timm blocks run as themselves (no packed CPU path)


def _scale(block: nn.Module, i: int, x: torch.Tensor) -> torch.Tensor:
    """A branch's layer scale: ``ls{i}`` (VisionTransformer) or ``gamma_{i}`` (Eva), identity where absent."""
    ls = getattr(block, f"ls{i}", None)
    if ls is not None:
        return ls(x)
    g = getattr(block, f"gamma_{i}", None)
    return x if g is None else g * x


class TimmEva(TimmViT):
    """timm's ``Eva`` (EVA-02): a ViT whose attention takes a rotary position embedding."""

    def setup(self, module):
        if any(type(b).__name__ != "EvaBlock" for b in module.blocks):
            raise ConfigError("This Eva uses post-norm blocks, which vitrep cannot take apart; use a pre-norm EVA.")

    def block_kwargs(self, m) -> dict:
        if m.rope is None:
            return {}
        rope = m.rope.get_embed() if hasattr(m.rope, "feat_shape") else m.rope.get_embed(shape=m.patch_embed.grid_size)
        return {"rope": rope}


# --- MLP-Mixers -----------------------------------------------------------------------------------------

class TimmMixer(_PerModel, Mixer):
    """timm's ``MlpMixer`` with Mixer or ResMLP blocks (:class:`.mixer.Mixer`, with ResMLP's layer scales)."""

    specs = ()
    calibration = "mixer"
    auto_bf16 = False  # the fidelity grid measured the Mixer, not ResMLP or timm's other MlpMixer variants

    def builder_kwargs(self, ref):
        return _PerModel.builder_kwargs(self, ref)


class GMLP(_PerModel, TokenFamily):
    """timm's ``MlpMixer`` with gMLP blocks: ``x + gated_mlp(norm(x))``; the token mixing (the spatial gating
    unit) sits inside the gated MLP, so the block has three components."""

    unit = "block"
    has_embed = False
    components = ("norm_1", "gated_mlp", "residual_1")
    component_aliases = {"ln_1": "norm_1", "mlp": "gated_mlp", "residual": "residual_1"}
    swap_aliases = {"stem": "stem", "ln_1": "blocks.0.norm", "final_norm": "norm", "head": "head"}
    first_conv = "stem.proj"
    classifier = "head"
    calibration = "mixer"

    def blocks(self, m):
        return list(m.blocks)

    def stem_op(self, m, size, fast):
        return m.stem

    def norm(self, m):
        return m.norm

    def head_op(self, m, fast):
        return m.forward_head

    def block_forward(self, block, x, removed, fast=False, **kw):
        if not removed:
            return block(x)
        h = x if "norm_1" in removed else block.norm(x)
        if "gated_mlp" not in removed:
            h = block.mlp_channels(h)
        return h if "residual_1" in removed else x + h

    def packable_bytes(self, module):
        return 0


# --- convolutional networks ------------------------------------------------------------------------------

class _Staged(_PerModel, Family):
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


_ADAPTERS = {"VisionTransformer": TimmViT, "Eva": TimmEva, "MlpMixer": TimmMixer, "ResNet": TimmResNet,
             "ConvNeXt": TimmConvNeXt}
__all__ = ["PREFIX", "SUPPORTED", "is_timm", "search", "timm_spec"]
