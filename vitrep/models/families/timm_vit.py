"""timm's ``VisionTransformer`` and ``Eva``: one adapter for DeiT, DINO/DINOv2, CLIP image towers, EVA-02, ...

A timm ``VisionTransformer`` differs from torchvision's in its names and
layout (``patch_embed.proj``, ``cls_token``, ``reg_token``, ``pos_embed``,
``norm_pre``, ``blocks``, ``norm``, ``head``) and in its block, which may
scale each branch (``ls1``/``ls2``, identity for DeiT; ``gamma_1``/``gamma_2``
in an ``Eva``)::

    x = x + ls1(attn(norm1(x)))     # ln_1, attention, residual_1
    x = x + ls2(mlp(norm2(x)))      # ln_2, mlp, residual_2

The components carry the ViT's names, so surveys and presets read the same;
a layer scale goes with its branch.  ``pos_embed=False`` leaves the
positional embedding out, as for torchvision's ViTs.  On the packed CPU path
(:mod:`vitrep.fast.linear`) the patch embedding, a block's plain timm
``Mlp`` and a class-token head run packed; attention, gated MLPs and any
other block run as themselves.

DeiT-Tiny (Touvron et al.) is listed in the menus under its short name
``deit_tiny``: the timm model ``deit_tiny_patch16_224`` (:data:`DEIT`, the
family ``deit``), served by this adapter as any ``timm:NAME`` is.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from .base import VIT_COMPONENTS, Hook, TokenFamily, caller, is_patch_conv, patch_product
from .timm_base import PerModel, alias

_PRE_NORM_BLOCKS = ("Block", "EvaBlock")  # the block classes whose forward is the formula above


class TimmViT(PerModel, TokenFamily):
    """timm's ``VisionTransformer``: class token, registers, positions added before or after them, pre-norm."""

    unit = "encoder"
    components = VIT_COMPONENTS
    swap_aliases = {"stem": "patch_embed", "pos_embedding": "pos_embed", "class_token": "cls_token",
                    "ln_1": "blocks.0.norm1", "final_norm": "norm", "head": "head"}
    first_conv = "patch_embed.proj"  # timm's pretrained_cfg names
    classifier = "head"
    calibration = "vit"  # a ViT: its step sizes until calibrate.py gets a row for timm's ViTs

    def blocks(self, m):
        return list(m.blocks)

    def stem_op(self, m, size, fast):
        pe = m.patch_embed
        return patch_product(pe.proj, size, pe, fast) if _plain_patches(pe) else pe

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
        if not (fast and _token_head(m)):
            return m.forward_head  # timm's pooling (token, avg, map), fc_norm and head
        call = caller(fast)
        return lambda x: call(m.head, m.fc_norm(x[:, 0]))  # the class token, its head packed

    def block_forward(self, block, x, removed, fast=False, **kw):
        fast = fast and _packed_mlp(block)
        if not removed and not fast:
            return block(x, **kw)
        call = caller(fast)
        inp = x  # (B, T, D)
        h = x if "ln_1" in removed else block.norm1(x)
        if "attention" not in removed:
            h = _scale(block, 1, block.attn(h, **kw))
        x = h if "residual_1" in removed else inp + h
        y = x if "ln_2" in removed else block.norm2(x)
        if "mlp" not in removed:
            y = _scale(block, 2, call(block.mlp, y))
        return y if "residual_2" in removed else x + y

    def heads_hook(self, block):
        attn = block.attn
        n = attn.num_heads
        return Hook(attn.proj, "input", lambda x: x.reshape(x.shape[0], x.shape[1], n, -1))

    def packable_bytes(self, module):
        """The weights the packed path packs: the patch embedding, each plain ``Mlp``, a class-token head."""
        pe = module.patch_embed
        n = pe.proj.weight.numel() if _plain_patches(pe) and is_patch_conv(pe.proj) else 0
        n += sum(_linear(b.mlp.fc1) + _linear(b.mlp.fc2) for b in module.blocks if _packed_mlp(b))
        n += _linear(module.head) if _token_head(module) else 0
        return n * 4


def _plain_patches(pe: nn.Module) -> bool:
    """A patch embedding that is its convolution alone, flattened (no norm, no dynamic padding)."""
    return isinstance(pe.norm, nn.Identity) and not getattr(pe, "dynamic_img_pad", False) and pe.flatten


def _packed_mlp(block: nn.Module) -> bool:
    """A pre-norm block whose MLP is timm's plain ``Mlp`` (a gated one splits fc1's output and runs as itself)."""
    return type(block).__name__ in _PRE_NORM_BLOCKS and type(block.mlp).__name__ == "Mlp"


def _token_head(m: nn.Module) -> bool:
    """timm's head reads the class token (global_pool ``token``, no attention pooling)."""
    return getattr(m, "global_pool", None) == "token" and getattr(m, "attn_pool", None) is None


def _linear(mod: nn.Module) -> int:
    """The weights :func:`vitrep.fast.linear.call` packs in ``mod`` if it is a linear layer, else none."""
    return mod.weight.numel() if type(mod) in (nn.Linear, nn.modules.linear.NonDynamicallyQuantizableLinear) else 0


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


# The family "deit" of the model menus: DeiT-Tiny under its short name, a timm model like any other.
DEIT = TimmViT.family("deit", alias(
    "deit_tiny", "deit_tiny_patch16_224.fb_in1k", "deit", "DeiT-Tiny/16",
    "DeiT-Tiny/16, 12 encoders of width 192 (timm deit_tiny_patch16_224)"))
