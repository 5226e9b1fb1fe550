"""Stem filter views: the first layer's filters as a grid, each min-max normalised.

The stem is the family adapter's ``first_conv`` (timm's name for it): a
ViT's ``conv_proj`` (D filters of 3 x P x P, 768 of 3x32x32 for ViT-B/32),
a Mixer's ``stem.proj``, ResNet-50's ``conv1`` (64 of 3x7x7).  Each filter is scaled on its own to span [0, 1] (minimum to 0,
maximum to 1), as the paper plots them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .models.weights import LoadedModel


def stem_weight(lm: LoadedModel) -> torch.Tensor:
    """The stem's weight ``(N, 3, k, k)``."""
    return lm.adapter.stem_weight(lm.module)


def normalise_each(w: torch.Tensor) -> np.ndarray:
    """``(N, 3, k, k)`` -> ``(N, k, k, 3)`` float32, every filter min-max scaled to [0, 1]."""
    w = w.detach().float().cpu()
    flat = w.reshape(w.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = (flat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return scaled.reshape(w.shape).permute(0, 2, 3, 1).numpy()


@dataclass
class FilterGrid:
    tiles: np.ndarray  # (N, k, k, 3) in [0, 1]

    @property
    def count(self) -> int:
        return self.tiles.shape[0]

    def image(self, cols: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
        """The tiles as one uint8 grid image, ``pad`` white pixels between tiles, each tile ``scale``x enlarged."""
        n, k = self.count, self.tiles.shape[1]
        cols = cols or math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        ks = k * scale
        out = np.full((rows * (ks + pad) + pad, cols * (ks + pad) + pad, 3), 255, np.uint8)
        t = (self.tiles * 255 + 0.5).astype(np.uint8)
        if scale > 1:
            t = t.repeat(scale, 1).repeat(scale, 2)
        for i in range(n):
            r, c = divmod(i, cols)
            y, x = pad + r * (ks + pad), pad + c * (ks + pad)
            out[y:y + ks, x:x + ks] = t[i]
        return out

    def tile(self, i: int, scale: int = 8) -> np.ndarray:
        """One filter, enlarged for a close look."""
        t = (self.tiles[i] * 255 + 0.5).astype(np.uint8)
        return t.repeat(scale, 0).repeat(scale, 1)


def filter_grid(lm: LoadedModel) -> FilterGrid:
    return FilterGrid(normalise_each(stem_weight(lm)))
