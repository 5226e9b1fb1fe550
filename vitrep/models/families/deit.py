"""timm's Vision Transformer as DeiT trains it (Touvron et al.): the family timm's ViTs share.

A timm ``VisionTransformer`` differs from torchvision's in its names and
layout (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks``,
``norm``, ``head``) and in its block, which may scale each branch
(``ls1``/``ls2``, identity for DeiT)::

    x = x + ls1(attn(norm1(x)))     # ln_1, attention, residual_1
    x = x + ls2(mlp(norm2(x)))      # ln_2, mlp, residual_2

The components carry the ViT's names, so surveys and presets read the same.
``pos_embed=False`` leaves the positional embedding out, as for torchvision's
ViTs.
"""

from __future__ import annotations

import torch

from .base import VIT_COMPONENTS, ModelSpec, TokenFamily, TrainedSource, caller, patch_product


def _timm(name: str):
    def build(**kw):
        import timm

        return timm.create_model(name, pretrained=False, **kw)

    return build


class DeiT(TokenFamily):
    name = "deit"
    unit = "encoder"
    components = VIT_COMPONENTS
    swap_aliases = {"stem": "patch_embed", "pos_embedding": "pos_embed", "class_token": "cls_token",
                    "ln_1": "blocks.0.norm1", "final_norm": "norm", "head": "head"}
    first_conv = "patch_embed.proj"  # timm's pretrained_cfg names
    classifier = "head"
    calibration = "vit"  # a ViT: its step sizes until calibrate.py gets a row for DeiT
    specs = (
        ModelSpec("deit_tiny", "deit", 224, "DeiT-Tiny/16, 12 encoders of width 192 (timm deit_tiny_patch16_224)",
                  _timm("deit_tiny_patch16_224"),
                  trained=TrainedSource("timm", "timm/deit_tiny_patch16_224.fb_in1k"), label="DeiT-Tiny/16"),
    )

    def builder_kwargs(self, ref):
        spec = ref.spec
        return {"img_size": ref.size} if ref.size not in (None, spec.size) else {}

    def blocks(self, m):
        return list(m.blocks)

    def stem_op(self, m, size, fast):
        return patch_product(m.patch_embed.proj, size, m.patch_embed, fast)

    def embed_op(self, m, pos_embed):
        def embed(x):
            x = torch.cat([m.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1+N, D)
            return x + m.pos_embed if pos_embed else x

        return embed

    def norm(self, m):
        return m.norm

    def head_op(self, m, fast):
        call = caller(fast)
        return lambda x: call(m.head, m.fc_norm(x[:, 0]))  # class token (global_pool "token")

    def block_forward(self, block, x, removed, fast=False):
        if not removed and not fast:
            return block(x)
        call = caller(fast)
        inp = x  # (B, 1+N, D)
        h = x if "ln_1" in removed else block.norm1(x)
        if "attention" not in removed:
            h = block.ls1(block.attn(h))
        x = h if "residual_1" in removed else inp + h
        y = x if "ln_2" in removed else block.norm2(x)
        if "mlp" not in removed:
            y = block.ls2(call(block.mlp, y))
        return y if "residual_2" in removed else x + y

    def packable_bytes(self, module):
        attn = sum(b.attn.qkv.weight.numel() + b.attn.proj.weight.numel() for b in module.blocks) * 4
        return super().packable_bytes(module) - attn + module.patch_embed.proj.weight.numel() * 4  # attention runs plain
