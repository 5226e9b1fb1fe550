"""Parameterisations: where a descent starts, and what of it the model sees.

- :func:`pixel_starts`: each row's seeded start ``a_0 ~ N(init_mean,
  init_std)`` in raw pixels, and the baseline's shift ``N(0, 1/18)``, drawn
  from the row's own generator in that order (shift first), so a row's
  numbers do not depend on the batch it runs in.
- :class:`JitterCanvas`: class images.  Until ``jitter_start`` the model sees
  the image; then the image is enlarged to a canvas ``size + jitter`` wide and
  each step optimises one random model-sized crop of it, pasting the step
  back, the rest of the canvas unchanged (the paper's positional jitter).
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def pixel_starts(configs: Sequence, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(shift, a_0)``, each ``(B, 3, H, W)`` on the CPU: the baseline's ``N(0, 1/18)`` and the start."""
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    shift = torch.stack([torch.randn(3, H, W, generator=g) for g in gens]) / 18.0
    start = torch.stack([torch.randn(3, H, W, generator=g) * c.init_std + c.init_mean for g, c in zip(gens, configs)])
    return shift, start


def enlarge(a: torch.Tensor, canvas: int) -> torch.Tensor:
    """The canvas for the jitter phase: the image so far, resized up."""
    return F.interpolate(a, size=(canvas, canvas), mode="bilinear", align_corners=False)


def crop_step(a: torch.Tensor, box: tuple[int, int], size: int, update: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``update`` to the ``size`` crop at ``box`` only; the rest of the canvas is left as it was."""
    y, x = box
    out = a.clone()
    out[:, :, y:y + size, x:x + size] = update(a[:, :, y:y + size, x:x + size])
    return out


class JitterCanvas:
    """The loop's ``view`` and ``paste`` for class images: the image, then random crops of an enlarged canvas.

    ``canvas`` is the whole canvas as last seen (what a report measures and
    shows).  Crop corners are drawn once per step, in step order, from the seed.
    """

    def __init__(self, size: int, jitter: int, jitter_start: int, steps: int, seed: int, start: torch.Tensor) -> None:
        self.size, self.jitter, self.start_at, self.steps = size, jitter, jitter_start, steps
        self.rng = random.Random(seed)
        self.boxes: dict[int, tuple[int, int]] = {}
        self.canvas = start

    def jittering(self, n: int) -> bool:
        return self.jitter > 0 and self.start_at <= n < self.steps

    def view(self, a: torch.Tensor, n: int):
        S, wide = self.size, self.size + self.jitter
        if self.jittering(n):
            if a.shape[-1] != wide:
                a = enlarge(a, wide)
            if n not in self.boxes:
                self.boxes[n] = (self.rng.randint(0, wide - S), self.rng.randint(0, wide - S))
            y, x = self.boxes[n]
            self.canvas = a
            return a, a[:, :, y:y + S, x:x + S]
        self.canvas = a
        if a.shape[-1] != S:  # after the last step: the whole canvas, at the model's size (measured, not stepped)
            return a, F.interpolate(a, size=(S, S), mode="bilinear", align_corners=False)
        return a, a

    def paste(self, a: torch.Tensor, new: torch.Tensor, n: int, rows) -> torch.Tensor:
        return crop_step(a, self.boxes[n], self.size, lambda _: new) if self.jittering(n) else new


def noise_start(seed: int, shape: tuple, mean: float, std: float) -> torch.Tensor:
    """One start ``N(mean, std)`` of ``shape`` from ``seed`` alone (a class image's: no baseline is drawn first)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * std + mean
