"""Image parameterisations and robustness transforms of a unit visualisation.

- ``pixel``: the image itself, as the write-up's class images and
  reconstructions descend it: a start ``N(0.7, 1/20)``, clamped to [0, 1]
  after each step, optionally blurred after each step on the write-up's
  schedule (sigma 2.4 -> 0.8, :func:`vitrep.descent.steps.blur`).
- ``fourier``: lucent's (and lucid's) image: a spectrum scaled by
  1/frequency, inverse real FFT, colour decorrelation by the square root of
  ImageNet's colour covariance, then a sigmoid; the descent moves the
  spectrum, so low frequencies move first.

The transforms are lucent's "transformation robustness": each step the
model sees the image jittered, scaled and rotated at random
(``kornia.augmentation.RandomAffine``, one draw a step for the whole batch,
seeded by the run's seed and the step, so a run repeats exactly and a row's
result does not depend on the batch it runs in).  Every row starts from the
same seeded image: rows differ by their objectives alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ..descent.steps import blur, linear

# lucid's colour correlation: the square root of ImageNet's colour covariance (lucid.optvis.param.color),
# its columns scaled to a largest norm of 1.
_COLOR_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype="float32")
_COLOR = _COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))
PARAMS = ("fourier", "pixel")


class PixelImage:
    """The image itself; after each step blurred (the write-up's schedule, when ``blur``) and clamped."""

    def __init__(self, rows: int, size: int, seed: int, steps: int, blur_schedule: bool = False, device="cpu") -> None:
        g = torch.Generator().manual_seed(seed)
        a = (torch.randn(1, 3, size, size, generator=g) * 0.05 + 0.7).clamp_(0, 1).repeat(rows, 1, 1, 1)
        self.a = a.to(device).requires_grad_(True)  # every row the same start: rows differ by their objectives
        self.steps, self.blur = steps, blur_schedule

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.a]

    def image(self) -> torch.Tensor:
        return self.a

    @torch.no_grad()
    def after_step(self, n: int) -> None:
        if self.blur:
            self.a.copy_(blur(self.a, linear(2.4, 0.8, n, self.steps)))
        self.a.clamp_(0, 1)


def _freqs(h: int, w: int) -> np.ndarray:
    """The frequency of each entry of a real 2-D spectrum ``(h, w // 2 + 1)`` (lucid's ``rfft2d_freqs``)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


class FourierImage:
    """lucent's ``fft_image`` with ``to_valid_rgb(decorrelate=True)``: spectrum -> image -> colours -> sigmoid."""

    def __init__(self, rows: int, size: int, seed: int, decay_power: float = 1.0, sd: float = 0.01,
                 device="cpu") -> None:
        f = _freqs(size, size)
        g = torch.Generator().manual_seed(seed)
        start = (torch.randn(1, 3, *f.shape, 2, generator=g) * sd).repeat(rows, 1, 1, 1, 1)
        self.spectrum = start.to(device).requires_grad_(True)  # every row the same start
        scale = 1.0 / np.maximum(f, 1.0 / size) ** decay_power
        self.scale = torch.tensor(scale, dtype=torch.float32, device=device)[None, None, ..., None]
        self.size = size
        self.color = torch.tensor(_COLOR.T, device=device)

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.spectrum]

    def image(self) -> torch.Tensor:
        spec = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        x = torch.fft.irfftn(spec, s=(self.size, self.size), norm="ortho") / 4.0
        x = (x.permute(0, 2, 3, 1) @ self.color).permute(0, 3, 1, 2)
        return torch.sigmoid(x)

    def after_step(self, n: int) -> None:
        pass


def make_param(kind: str, rows: int, size: int, seed: int, steps: int, blur_schedule: bool, device="cpu"):
    if kind == "fourier":
        return FourierImage(rows, size, seed, device=device)
    return PixelImage(rows, size, seed, steps, blur_schedule, device)


class Robustness:
    """Jitter (pixels), scale (a fraction) and rotation (degrees) drawn anew each step; all 0 = none."""

    def __init__(self, size: int, jitter: int, scale: float, rotate: float, seed: int) -> None:
        self.seed, self.aug = seed, None
        if jitter or scale or rotate:
            import kornia.augmentation as K

            self.aug = K.RandomAffine(degrees=rotate, translate=(jitter / size, jitter / size),
                                      scale=(1.0 - scale, 1.0 + scale), padding_mode="reflection", p=1.0,
                                      same_on_batch=True)  # a row's run does not depend on its batch

    def __call__(self, x: torch.Tensor, n: int) -> torch.Tensor:
        if self.aug is None:
            return x
        with torch.random.fork_rng(devices=[]):  # kornia draws on the CPU generator; CUDA's is left alone
            torch.default_generator.manual_seed(self.seed * 1_000_003 + n)
            return self.aug(x)
