"""What every model family's adapter provides, and the shared machinery of token models.

A family adapter is the one place that knows a kind of network: its models
(:class:`ModelSpec` s), its taps and how a user names them, the path of
operations from image to each tap, its block forward with components
removed, its component and swap names, its first convolution and classifier
(named as timm's per-model config names them: ``first_conv``, ``classifier``)
and what the packed CPU path would hold.  Nothing outside ``vitrep.models.families``
asks which family a model is; it asks the model's adapter
(``spec.adapter``, ``ref.adapter``, ``lm.adapter``).

:class:`TokenFamily` holds what the token models (ViT, the feed-forward ViT,
timm's ViTs, MLP-Mixer) share: ``stem`` -> [``embed``] -> blocks -> ``norm`` ->
``logits`` and the taps of that chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...fast import linear as fastops
from ...errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Op:
    """One operation of a path from image to tap, with a hashable key (:mod:`vitrep.models.taps` shares equal keys)."""

    key: Hashable
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __eq__(self, other):  # ops are equal when their keys are
        return isinstance(other, Op) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


@dataclass(frozen=True)
class TrainedSource:
    """Where trained weights come from: a torchvision weights enum or a timm/HF file.

    A torchvision file name is read from the enum's own URL (``filename``),
    never retyped.
    """

    kind: str  # "torchvision" | "timm"
    ident: str  # "ViT_B_32_Weights.IMAGENET1K_V1" or "timm/mixer_b16_224.goog_in21k_ft_in1k"
    hf_filename: str = "model.safetensors"  # the file of a timm/HF repository

    @property
    def filename(self) -> str:
        """The file as it is cached: the last part of torchvision's URL, or the HF file's name."""
        if self.kind == "torchvision":
            from torchvision.models import get_weight

            return get_weight(self.ident).url.rsplit("/", 1)[-1]
        return self.hf_filename


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # the adapter's name (vitrep.models.families)
    size: int
    description: str
    builder: Callable[..., nn.Module] = field(repr=False, compare=False)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    trained: Optional[TrainedSource] = None
    arch_defaults: tuple = ()  # configurable architectures: (("patch", 16), ("width", 1024), ...)
    depth: int = 12  # encoders / blocks (ResNet: 4 stages)
    label: str = ""  # the display name (``ViT-B/32``): menus, sentences; default the name

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def configurable(self) -> bool:
        return bool(self.arch_defaults)

    @property
    def adapter(self) -> "Family":
        return get_family(self.family)


def _plain(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def caller(fast: bool) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``call(module, x)``: on the packed CPU path (:mod:`vitrep.fast.linear`) or plain."""
    return fastops.call if fast else _plain


class Family:
    """One family of models; subclasses fill in the attributes and the path."""

    name: str = ""
    unit: str = "block"  # what a plain layer number counts: encoder, block, layer (a ResNet stage)
    components: tuple[str, ...] = ()  # removable lines of a block, in forward order
    component_aliases: dict[str, str] = {}  # other families' names for the same line
    swap_aliases: dict[str, str] = {}  # friendly swap names -> state_dict prefixes
    first_conv: str = ""  # the stem convolution's module name (timm's ``first_conv``)
    classifier: str = ""  # the classifier's module name (timm's ``classifier``)
    calibration: str = ""  # the calibration table's family for the default step sizes (default: name)
    takes_any_size: bool = False  # an input size option applies to a fixed architecture
    # precision ``auto`` takes bf16 for this family on an AMX CPU: only once benchmarks/precision.py measured its
    # bf16 runs faster and faithful (the fidelity rule, docs/performance.md): the torchvision ViTs and the Mixer so far
    auto_bf16: bool = False
    specs: tuple[ModelSpec, ...] = ()

    # --- taps ------------------------------------------------------------------------------------
    def taps(self, depth: int) -> list[str]:
        """Every tap, in forward order."""
        raise NotImplementedError

    def sweep_taps(self, depth: int) -> list[str]:
        """The taps of a layer sweep: every encoder/block/stage output in order."""
        raise NotImplementedError

    def picker_taps(self, depth: int) -> list[str]:
        """The taps a layer menu offers."""
        return self.taps(depth)

    def default_layer(self, depth: int) -> str:
        """Where a survey of components looks first: a few blocks in."""
        return self.sweep_taps(depth)[min(4, depth) - 1]

    def parse_tap(self, text: str | int, depth: int) -> str:
        """A user's layer (``1``, ``encoder 3``, ``final norm``, ...) -> canonical tap, or a ConfigError."""
        raise NotImplementedError

    def taps_summary(self, depth: int) -> str:
        """One line naming the taps, for ``vitrep models``."""
        raise NotImplementedError

    def path(self, lm, tap: str, surgery, pos_embed: bool, fast: bool) -> list[Op]:
        """The operations from the (normalised) image to ``tap`` of the :class:`vitrep.models.weights.LoadedModel` ``lm``;
        keys include the :class:`vitrep.models.surgery.Surgery` so rows that differ split."""
        raise NotImplementedError

    # --- blocks and surgery ----------------------------------------------------------------------
    def block_forward(self, block: nn.Module, x: torch.Tensor, removed: frozenset, fast: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def surgery_blocks(self, depth: int) -> int:
        """How many blocks a surgery's block numbers range over."""
        return depth

    def tap_depth(self, tap: str, depth: int) -> int:
        """The depth band of the calibrated step sizes for ``tap`` (:func:`vitrep.calibration.tap_depth`)."""
        from ...calibration import tap_depth

        return tap_depth(tap, depth)

    def canonical_component(self, name: str) -> str:
        c = name.lower()
        return self.component_aliases.get(c, c)

    # --- the module ------------------------------------------------------------------------------
    def depth(self, module: nn.Module) -> int:
        """Encoders/blocks of a built module."""
        raise NotImplementedError

    def stem_weight(self, module: nn.Module) -> torch.Tensor:
        """The first convolution's weight ``(N, 3, k, k)``."""
        return module.get_submodule(self.first_conv).weight

    def builder_kwargs(self, ref) -> dict:
        """The keyword arguments ``ref.spec.builder`` takes for ``ref``'s architecture and input size."""
        spec = ref.spec
        if not spec.configurable and ref.size not in (None, spec.size):
            return {"image_size": ref.size}
        return ref.arch()

    # --- units (vitrep.units) ---------------------------------------------------------------------
    def unit_hook(self, module: nn.Module, block: int, kind: str) -> Hook:
        """The :class:`Hook` of block ``block``'s ``kind`` units (``mlp``: hidden units; ``head``: attention heads)."""
        raise ConfigError(f"This model has no {'MLP hidden units' if kind == 'mlp' else 'attention heads'} "
                          f"to visualise; its units are channels at a layer (channel, neuron, direction).")

    def packable_bytes(self, module: nn.Module) -> int:
        """Bytes :mod:`vitrep.fast.linear` packs for this (meta-device) module: every linear weight."""
        n = 0
        for mod in module.modules():
            if isinstance(mod, nn.Linear):
                n += mod.weight.numel() * 4
            elif isinstance(mod, nn.MultiheadAttention) and mod.in_proj_weight is not None:
                n += mod.in_proj_weight.numel() * 4
        return n


@dataclass(frozen=True)
class Hook:
    """Where a unit objective (:mod:`vitrep.units`) reads inside a block: ``module``'s output (``when="output"``)
    or its first input (``"input"``), turned by ``read`` into ``(B, T, units)`` (an MLP's hidden units) or
    ``(B, T, heads, d)`` (attention heads' outputs before the output projection)."""

    module: nn.Module
    when: str = "output"
    read: Callable[[torch.Tensor], torch.Tensor] = lambda t: t


_REGISTRY: dict[str, Family] = {}
_PER_MODEL: dict[str, Family] = {}  # adapters made for one model each (timm:NAME), apart from the families


def register(*families: Family) -> dict[str, Family]:
    """Add adapters to the registry (in menu order); returns it."""
    for f in families:
        _REGISTRY[f.name] = f
    return _REGISTRY


def register_model_adapter(adapter: Family) -> None:
    """An adapter that serves one model (a timm model by name); found by :func:`get_family`, not listed as a family."""
    _PER_MODEL[adapter.name] = adapter


def get_family(name: str) -> Family:
    found = _REGISTRY.get(name) or _PER_MODEL.get(name)
    if found is None:
        raise ConfigError(f"There is no model family {name!r}; the families are {', '.join(_REGISTRY)}.")
    return found


def is_patch_conv(conv: nn.Conv2d) -> bool:
    """A convolution that cuts patches: square kernel = stride, no padding (:func:`patch_product` applies)."""
    p = conv.kernel_size[0]
    return conv.stride == (p, p) and conv.padding == (0, 0) and conv.kernel_size == (p, p)


def patch_product(conv: nn.Conv2d, size: int, fallback: Callable, fast: bool = False) -> Callable:
    """A patch-embedding convolution as one matrix product, tokens ``(B, N, D)`` in row-major order.

    The stem is a convolution with kernel = stride = patch and no padding, so it
    equals cutting the image into patches and multiplying by the reshaped
    kernel.  On CPU its backward to the input is several times faster than the
    strided convolution's (benchmarks/), and the result agrees to float
    rounding (tests/test_taps.py).  Any other convolution runs ``fallback``.
    """
    if not is_patch_conv(conv):
        return fallback
    p = conv.kernel_size[0]
    weight = conv.weight.reshape(conv.out_channels, -1)  # (D, 3*p*p)

    def f(x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        torch._assert(h == size and w == size, f"Expected {size}x{size} input, got {h}x{w}")
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)
        return (fastops.linear if fast else F.linear)(patches, weight, conv.bias)

    return f


# The six parts of a pre-norm transformer block, as every ViT adapter (torchvision's, timm's) names them.
VIT_COMPONENTS = ("ln_1", "attention", "residual_1", "ln_2", "mlp", "residual_2")


class TokenFamily(Family):
    """Token models: ``stem`` (patch tokens), [``embed``], blocks, ``norm``, ``logits``."""

    has_embed: bool = True  # a class token and positions after the stem (not Mixer)

    # subclasses say where the parts are
    def blocks(self, m: nn.Module) -> list[nn.Module]:
        raise NotImplementedError

    def stem_op(self, m: nn.Module, size: int, fast: bool) -> Callable:
        raise NotImplementedError

    def embed_op(self, m: nn.Module, pos_embed: bool) -> Callable:
        raise NotImplementedError

    def norm(self, m: nn.Module) -> nn.Module:
        raise NotImplementedError

    def head_op(self, m: nn.Module, fast: bool) -> Callable:
        raise NotImplementedError

    def block_kwargs(self, m: nn.Module) -> dict:
        """Keyword arguments every block's forward takes besides the tokens (none, for most families)."""
        return {}

    def depth(self, module: nn.Module) -> int:
        return len(self.blocks(module))

    def mlp_act(self, block: nn.Module) -> Optional[nn.Module]:
        """The nonlinearity of the block's (channel) MLP: timm's ``Mlp.act`` unless the family says otherwise."""
        mlp = getattr(block, "mlp", None)
        return getattr(mlp, "act", None)

    def heads_hook(self, block: nn.Module) -> Optional[Hook]:
        """The heads' outputs of the block's attention (None: the block has none)."""
        return None

    def unit_hook(self, module, block, kind):
        blk = self.blocks(module)[block - 1]
        if kind == "mlp" and self.mlp_act(blk) is not None:
            return Hook(self.mlp_act(blk))
        found = self.heads_hook(blk) if kind == "head" else None
        return found if found is not None else super().unit_hook(module, block, kind)

    # taps
    def _pre(self) -> list[str]:
        return ["stem", "embed"] if self.has_embed else ["stem"]

    def taps(self, depth: int) -> list[str]:
        u = self.unit
        return self._pre() + [f"{u}-{k}" for k in range(1, depth + 1)] + \
            [f"only-{u}-{k}" for k in range(1, depth + 1)] + ["norm", "logits"]

    def sweep_taps(self, depth: int) -> list[str]:
        return [f"{self.unit}-{k}" for k in range(1, depth + 1)]

    def parse_tap(self, text: str | int, depth: int) -> str:
        t = str(text).strip().lower().replace("_", "-").replace(" ", "-")
        t = {"final-norm": "norm", "ln": "norm", "final-ln": "norm", "head": "logits", "output": "logits"}.get(t, t)
        if t in self._pre() + ["norm", "logits"]:
            return t
        m = re.fullmatch(r"(only-)?(?:(?:encoder|block|layer)-?)?(\d+)", t)
        u = self.unit
        if m:
            k = int(m.group(2))
            if not 1 <= k <= depth:
                raise ConfigError(f"This model has {u}s 1 to {depth}, so {u} {k} does not exist.")
            return f"{'only-' if m.group(1) else ''}{u}-{k}"
        raise ConfigError(f"{text!r} is not a layer of this model; use a {u} number 1-{depth}, only-{u}-k, "
                          f"{', '.join(self._pre())}, norm or logits.")

    def taps_summary(self, depth: int) -> str:
        return f"{', '.join(self._pre())}, {self.unit}-1..{depth}, only-{self.unit}-k, norm, logits"

    def path(self, lm, tap, surgery, pos_embed, fast):
        m = lm.module
        blocks = self.blocks(m)
        ops = [Op(("stem",), self.stem_op(m, lm.size, fast))]  # (B, N, D)
        if tap == "stem":
            return ops
        if self.has_embed:
            ops.append(Op(("embed", pos_embed), self.embed_op(m, pos_embed)))  # (B, 1+N, D)
            if tap == "embed":
                return ops

        extra = self.block_kwargs(m)  # e.g. a rotary position embedding every block's attention takes

        def block_op(k: int) -> Op:
            blk, rm = blocks[k - 1], surgery.removed_in(k)
            return Op(("block", k, rm), lambda x: self.block_forward(blk, x, rm, fast, **extra))

        if tap.startswith("only-"):
            k = int(tap.rsplit("-", 1)[1])
            ops.append(Op(("only",), lambda x: x))  # keeps "only k" apart from "after k" in the prefix tree
            return ops + [block_op(k)]
        last = int(tap.rsplit("-", 1)[1]) if tap.startswith(f"{self.unit}-") else len(blocks)
        ops += [block_op(k) for k in range(1, last + 1)]
        if tap.startswith(f"{self.unit}-"):
            return ops
        ops.append(Op(("norm",), self.norm(m)))
        if tap == "logits":
            ops.append(Op(("head",), self.head_op(m, fast)))
        return ops
