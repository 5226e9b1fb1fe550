"""timm's MLP-Mixer: a patch stem, blocks of token mixing and channel mixing, a norm, a head.

The block has the ViT block's six lines with ``norm_1``, ``token_mixing``,
``residual_1``, ``norm_2``, ``channel_mixing``, ``residual_2``; the ViT names
are accepted for the same lines (``attention`` -> token mixing, ``mlp`` ->
channel mixing, ``ln_1`` -> ``norm_1``).  The head averages the tokens first,
as timm's does.
"""

from __future__ import annotations

from .base import HALF, ModelSpec, TokenFamily, TrainedSource, caller


def _custom_mixer(patch, width, depth, size, **_):
    from timm.models.mlp_mixer import MlpMixer

    return MlpMixer(img_size=size, patch_size=patch, num_blocks=depth, embed_dim=width)


def _mixer_b16(**_):
    import timm

    return timm.create_model("mixer_b16_224", pretrained=False)


class Mixer(TokenFamily):
    name = "mixer"
    unit = "block"
    has_embed = False
    auto_bf16 = True  # Mixer block 4 held the fidelity bar under GD and Adam, 2.2x faster (benchmarks/results/precision_fidelity.json)
    components = ("norm_1", "token_mixing", "residual_1", "norm_2", "channel_mixing", "residual_2")
    component_aliases = {"ln_1": "norm_1", "ln_2": "norm_2", "attention": "token_mixing", "mlp": "channel_mixing"}
    swap_aliases = {"stem": "stem", "ln_1": "blocks.0.norm1", "final_norm": "norm", "head": "head"}
    first_conv = "stem.proj"
    classifier = "head"
    specs = (
        ModelSpec("mixer_b16", "mixer", 224, "MLP-Mixer B/16 (timm mixer_b16_224, Tolstikhin et al.)", _mixer_b16,
                  mean=HALF, std=HALF, trained=TrainedSource("timm", "timm/mixer_b16_224.goog_in21k_ft_in1k"), label="MLP-Mixer B/16"),
        ModelSpec("mixer", "mixer", 224,
                  "MLP-Mixer of any patch, width and depth (untrained; the paper's: patch 16 or 8, width 1024)",
                  _custom_mixer, mean=HALF, std=HALF,
                  arch_defaults=(("patch", 16), ("width", 1024), ("depth", 8), ("size", 224)), label="MLP-Mixer"),
    )

    def blocks(self, m):
        return list(m.blocks)

    def stem_op(self, m, size, fast):
        return m.stem  # (B, N, D)

    def norm(self, m):
        return m.norm

    def mlp_act(self, block):
        return getattr(getattr(block, "mlp_channels", None), "act", None)  # the channel-mixing MLP's

    def head_op(self, m, fast):
        call = caller(fast)
        return lambda x: call(m.head, x.mean(dim=1))  # timm: average tokens, then head

    def block_forward(self, block, x, removed, fast=False, **kw):
        """timm ``MixerBlock`` (or ResMLP's ``ResBlock``, whose token mixing is one linear layer and whose
        branches carry layer scales) with the ``removed`` lines deleted (``fast``: packed linear layers on CPU)."""
        if not removed and not fast:
            return block(x)
        call = caller(fast)
        tokens = block.mlp_tokens if hasattr(block, "mlp_tokens") else block.linear_tokens
        ls1, ls2 = getattr(block, "ls1", None), getattr(block, "ls2", None)
        inp = x  # (B, N, D)
        h = x if "norm_1" in removed else block.norm1(x)
        if "token_mixing" not in removed:
            h = call(tokens, h.transpose(1, 2)).transpose(1, 2)
            h = h if ls1 is None else ls1 * h
        x = h if "residual_1" in removed else inp + h
        y = x if "norm_2" in removed else block.norm2(x)
        if "channel_mixing" not in removed:
            y = call(block.mlp_channels, y)
            y = y if ls2 is None else ls2 * y
        return y if "residual_2" in removed else x + y
