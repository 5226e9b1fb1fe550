"""timm's ``MlpMixer``: Mixer and ResMLP blocks (the Mixer family's adapter), and gMLP blocks.

A gMLP block is ``x + gated_mlp(norm(x))``: its token mixing (the spatial
gating unit) sits inside the gated MLP, so the block has three components,
``norm_1``, ``gated_mlp``, ``residual_1``.
"""

from __future__ import annotations

from .base import TokenFamily
from .mixer import Mixer
from .timm_base import PerModel


class TimmMixer(PerModel, Mixer):
    """timm's ``MlpMixer`` with Mixer or ResMLP blocks (:class:`.mixer.Mixer`, with ResMLP's layer scales)."""

    specs = ()
    calibration = "mixer"
    auto_bf16 = False  # the fidelity grid measured the Mixer, not ResMLP or timm's other MlpMixer variants

    def builder_kwargs(self, ref):
        return PerModel.builder_kwargs(self, ref)


class GMLP(PerModel, TokenFamily):
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
