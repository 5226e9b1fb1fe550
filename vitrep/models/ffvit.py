"""Melas-Kyriazi's attention-free "feed-forward" ViT.

A ViT whose self-attention is replaced by a feed-forward layer across tokens
("Do You Even Need Attention?", 2021).  As in his ``LinearBlock`` each block
first applies a feature MLP to every token, then an MLP over the token axis
(with its own layer norm over tokens), each pre-norm and residual.  Attribute
names follow torchvision's ``VisionTransformer`` (``conv_proj``,
``class_token``, ``encoder.pos_embedding``, ``encoder.layers``,
``encoder.ln``, ``heads``) so taps and swaps work the same way.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class FFBlock(nn.Module):
    def __init__(self, dim: int, num_tokens: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _mlp(dim, int(dim * mlp_ratio))
        self.ln_2 = nn.LayerNorm(num_tokens, eps=1e-6)
        self.token_mlp = _mlp(num_tokens, int(num_tokens * mlp_ratio))

    def forward(self, x: torch.Tensor, removed: frozenset = frozenset(), call=None) -> torch.Tensor:
        """The block with the ``removed`` lines deleted; ``call(module, x)`` runs its MLPs (default ``module(x)``)."""
        torch._assert(x.dim() == 3, f"Expected (B, N, D) tokens, got shape {tuple(x.shape)}")
        call = call or (lambda m, v: m(v))
        inp = x
        h = x if "ln_1" in removed else self.ln_1(x)
        if "mlp" not in removed:
            h = call(self.mlp, h)
        x = h if "residual_1" in removed else inp + h
        x = x.transpose(1, 2)  # (B, D, N): the second MLP mixes tokens
        y = x if "ln_2" in removed else self.ln_2(x)
        if "token_mlp" not in removed:
            y = call(self.token_mlp, y)
        out = y if "residual_2" in removed else x + y
        return out.transpose(1, 2)  # (B, N, D)


class _Encoder(nn.Module):
    def __init__(self, num_tokens: int, depth: int, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, num_tokens, dim).normal_(std=0.02))
        self.layers = nn.Sequential(
            OrderedDict((f"encoder_layer_{i}", FFBlock(dim, num_tokens, mlp_ratio)) for i in range(depth))
        )
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(x + self.pos_embedding))


class FeedForwardViT(nn.Module):
    """Attention-free ViT: patchify, class token, position, ``depth`` FF blocks, norm, head."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, hidden_dim: int = 768,
                 depth: int = 12, mlp_ratio: float = 4.0, num_classes: int = 1000) -> None:
        super().__init__()
        torch._assert(image_size % patch_size == 0, f"image size {image_size} is not a multiple of patch {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        n = (image_size // patch_size) ** 2
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.encoder = _Encoder(n + 1, depth, hidden_dim, mlp_ratio)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        torch._assert(h == self.image_size and w == self.image_size,
                      f"Expected {self.image_size}x{self.image_size} input, got {h}x{w}")
        x = self.conv_proj(x)  # (B, D, H/p, W/p)
        return x.reshape(b, self.hidden_dim, -1).permute(0, 2, 1)  # (B, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1+N, D)
        x = self.encoder(x)
        return self.heads(x[:, 0])
