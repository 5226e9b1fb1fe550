"""Models whose units' preferred inputs are known, and how close a visualisation came: checks that mean
something offline, where trained weights cannot be had (tests/test_units.py, benchmarks/units.py).

A ViT's stem is a convolution whose kernel is its stride, so a stem channel's
mean over patches is linear in the image: its preferred input (pixels in
[0, 1]) is its filter binarised and tiled over every patch.  A filter that
is an oriented grating must give that grating (the binarised grating
correlates 2 sqrt(2) / pi = 0.90 with it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def grating(size: int, period: float, degrees: float, phase: float = 0.0) -> torch.Tensor:
    """``cos(2 pi (x cos t + y sin t) / period + phase)`` on a ``size`` square."""
    y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    t = math.radians(degrees)
    return torch.cos(2 * math.pi * (x * math.cos(t) + y * math.sin(t)) / period + phase)


def set_stem(lm, filters: dict, gain: float = 0.05) -> None:
    """Stem filter c := ``filters[c]`` (a ``(P, P)`` pattern, the same in every colour) times ``gain``; every other
    filter and the bias zero.  Edits ``lm``'s module in place: give it a model of its own (its own seed)."""
    w = lm.module.conv_proj.weight
    with torch.no_grad():
        w.zero_()
        lm.module.conv_proj.bias.zero_()
        for c, pattern in filters.items():
            w[c] = pattern.expand(3, *pattern.shape) * gain


def patches(im: np.ndarray, p: int) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> one row per ``p`` patch, ``(n, 3 * p * p)`` in the stem's order."""
    t = torch.tensor(im).float().permute(2, 0, 1)[None]
    return F.unfold(t, p, stride=p)[0].T


def patch_correlation(im: np.ndarray, pattern: torch.Tensor) -> float:
    """The mean over patches of the Pearson correlation of each patch with ``pattern`` (``(3, p, p)``)."""
    x = patches(im, pattern.shape[-1])
    x = x - x.mean(1, keepdim=True)
    p = pattern.flatten() - pattern.mean()
    return float(((x @ p) / (x.norm(dim=1) * p.norm() + 1e-9)).mean())


def grating_presence(im: np.ndarray, period: float, degrees: float) -> float:
    """How much of the image (grey, centred) is the grating at any phase: the norm of its projection on the
    grating's cosine and sine, over its own norm (1: a pure grating of that period and orientation; the
    measure of a run whose transforms shift the image, where the phase is free)."""
    g = torch.tensor(im).float().mean(-1)
    g = g - g.mean()
    c, s = (grating(g.shape[0], period, degrees, ph) for ph in (0.0, math.pi / 2))
    return float(torch.sqrt((g * c).sum() ** 2 / (c * c).sum() + (g * s).sum() ** 2 / (s * s).sum()) / (g.norm() + 1e-9))
