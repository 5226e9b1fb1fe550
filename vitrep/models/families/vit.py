"""torchvision's Vision Transformers (B/32, B/16, L/16, L/32, H/14 and a ViT of any size).

Block (DESIGN.md section 2)::

    x = ln_1(in)          # ln_1
    x = attn(x)           # attention
    x = x + in            # residual_1
    y = ln_2(x)           # ln_2
    y = mlp(y)            # mlp
    out = x + y           # residual_2

Removing a component deletes its line, so the value flows through unchanged:
without ``attention`` the first half is ``ln_1(in) + in``; without
``residual_1`` it is ``attn(ln_1(in))``; without ``mlp`` the output is
``x + ln_2(x)``; without ``residual_2`` it is ``mlp(ln_2(x))``.  "Attention
only" in the paper's sense is ``--remove mlp,ln_2,residual_1,residual_2``.

``pos_embed=False`` leaves out the positional embedding, as the paper's
figures did (its code bypassed ``encoder.forward``); ``True`` adds it as the
model does.  Dropout is inactive in eval mode either way.
"""

from __future__ import annotations

import torch
from torch import nn

from ...fast import linear as fastops
import torch.nn.functional as F

from .base import VIT_COMPONENTS, Hook, ModelSpec, TokenFamily, TrainedSource, caller, patch_product


def _tv(fn_name: str, **fixed):
    def build(**kw):
        import torchvision.models as tvm

        return getattr(tvm, fn_name)(weights=None, **fixed, **kw)

    return build


def _custom_vit(patch, width, depth, heads, size, mlp_ratio=4):
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=size, patch_size=patch, num_layers=depth, num_heads=heads,
                             hidden_dim=width, mlp_dim=width * mlp_ratio)


def _tvw(enum_name: str) -> TrainedSource:
    return TrainedSource("torchvision", enum_name)


class ViT(TokenFamily):
    name = "vit"
    unit = "encoder"
    components = VIT_COMPONENTS
    auto_bf16 = True  # ViT-B/32 encoders 1, 4, 12 held the fidelity bar, 1.7-2.3x faster (benchmarks/results/precision_fidelity.json)
    swap_aliases = {"stem": "conv_proj", "pos_embedding": "encoder.pos_embedding", "class_token": "class_token",
                    "ln_1": "encoder.layers.encoder_layer_0.ln_1", "final_norm": "encoder.ln", "head": "heads"}
    first_conv = "conv_proj"
    classifier = "heads.head"
    specs = (
        ModelSpec("vit_b_32", "vit", 224, "ViT-B/32, 12 encoders of width 768 (torchvision)", _tv("vit_b_32"),
                  trained=_tvw("ViT_B_32_Weights.IMAGENET1K_V1"), label="ViT-B/32"),
        ModelSpec("vit_b_16", "vit", 224, "ViT-B/16, 12 encoders of width 768 (torchvision)", _tv("vit_b_16"),
                  trained=_tvw("ViT_B_16_Weights.IMAGENET1K_V1"), label="ViT-B/16"),
        ModelSpec("vit_l_16", "vit", 224, "ViT-L/16, 24 encoders of width 1024 (torchvision)", _tv("vit_l_16"),
                  depth=24, trained=_tvw("ViT_L_16_Weights.IMAGENET1K_V1"), label="ViT-L/16"),
        ModelSpec("vit_l_16_512", "vit", 512, "ViT-L/16 at 512 px with SWAG end-to-end weights (the paper's)",
                  _tv("vit_l_16", image_size=512), depth=24, trained=_tvw("ViT_L_16_Weights.IMAGENET1K_SWAG_E2E_V1"), label="ViT-L/16 at 512 px"),
        ModelSpec("vit_l_32", "vit", 224, "ViT-L/32, 24 encoders of width 1024 (torchvision)", _tv("vit_l_32"),
                  depth=24, trained=_tvw("ViT_L_32_Weights.IMAGENET1K_V1"), label="ViT-L/32"),
        ModelSpec("vit_h_14", "vit", 224, "ViT-H/14, 32 encoders of width 1280, SWAG linear-probe weights",
                  _tv("vit_h_14"), depth=32, trained=_tvw("ViT_H_14_Weights.IMAGENET1K_SWAG_LINEAR_V1"), label="ViT-H/14"),
        ModelSpec("vit_h_14_518", "vit", 518, "ViT-H/14 at 518 px with SWAG end-to-end weights",
                  _tv("vit_h_14", image_size=518), depth=32, trained=_tvw("ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1"), label="ViT-H/14 at 518 px"),
        ModelSpec("vit_custom", "vit", 64, "A ViT of any size, for teaching and fast tests", _custom_vit,
                  arch_defaults=(("patch", 8), ("width", 96), ("depth", 4), ("heads", 4), ("size", 64)), label="ViT"),
    )

    def blocks(self, m):
        return list(m.encoder.layers)

    def stem_op(self, m, size, fast):
        return patch_product(m.conv_proj, size, m._process_input, fast)

    def embed_op(self, m, pos_embed):
        def embed(x):
            x = torch.cat([m.class_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1+N, D)
            return x + m.encoder.pos_embedding if pos_embed else x

        return embed

    def norm(self, m):
        return m.encoder.ln

    def head_op(self, m, fast):
        call = caller(fast)
        return lambda x: call(m.heads, x[:, 0])  # class token

    def block_forward(self, block: nn.Module, x: torch.Tensor, removed: frozenset, fast: bool = False) -> torch.Tensor:
        """torchvision ``EncoderBlock`` with the ``removed`` lines deleted.

        ``fast`` computes the same formula with :mod:`vitrep.fast.linear` (packed
        linear layers on CPU); otherwise removing nothing calls the block itself.
        """
        if not removed and not fast:
            return block(x)
        call = caller(fast)
        inp = x  # (B, 1+N, D)
        h = x if "ln_1" in removed else block.ln_1(x)
        if "attention" not in removed:
            h = fastops.attention(block.self_attention, h) if fast else block.self_attention(h, h, h, need_weights=False)[0]
            h = block.dropout(h)
        x = h if "residual_1" in removed else h + inp
        y = x if "ln_2" in removed else block.ln_2(x)
        if "mlp" not in removed:
            y = call(block.mlp, y)
        return y if "residual_2" in removed else x + y

    def packable_bytes(self, module):
        return super().packable_bytes(module) + module.conv_proj.weight.numel() * 4  # the patch embedding as one product

    def mlp_act(self, block):
        return block.mlp[1]  # torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout

    def heads_hook(self, block):
        mha = block.self_attention
        return Hook(mha, "input", lambda x: _heads(mha, x))


def _heads(mha: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Each head's output ``(B, T, heads, d)`` of a batch-first ``nn.MultiheadAttention`` on ``x``, before the
    output projection (the module computes them inside one fused call, so they are computed again here)."""
    b, t, dim = x.shape
    h = mha.num_heads
    q, k, v = (z.reshape(b, t, h, dim // h).transpose(1, 2)
               for z in F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)


def _ffvit(patch, width, depth, size, **_):
    from ..ffvit import FeedForwardViT

    return FeedForwardViT(image_size=size, patch_size=patch, hidden_dim=width, depth=depth)


class FeedForwardViT(ViT):
    """Melas-Kyriazi's attention-free ViT (:mod:`vitrep.models.ffvit`): a ViT whose attention is an MLP over tokens."""

    name = "ffvit"
    components = ("ln_1", "mlp", "residual_1", "ln_2", "token_mlp", "residual_2")
    auto_bf16 = False  # not in the fidelity grid: auto stays fp32 until it is measured
    component_aliases = {"attention": "token_mlp"}
    specs = (
        ModelSpec("ffvit", "ffvit", 224, "Attention-free feed-forward ViT (Melas-Kyriazi), untrained", _ffvit,
                  arch_defaults=(("patch", 16), ("width", 768), ("depth", 12), ("size", 224)), label="feed-forward ViT"),
    )

    def block_forward(self, block, x, removed, fast=False):
        return block(x, removed, fastops.call if fast else None)

    def heads_hook(self, block):
        return None  # attention-free
