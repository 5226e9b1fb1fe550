"""Steps of a descent: the update rule (plain GD, normalised GD, Adam), its schedules, the blur, precision.

Pure tensor code with no model, memo or reporting in it, shared by
reconstruction (:mod:`vitrep.reconstruction`) and class generation
(:mod:`vitrep.generate`) through the loop (:mod:`vitrep.descent.loop`):
:class:`Stepper` is every update rule, :class:`Schedule` the step size and
blur sigma of every step, :class:`Update` one whole step (the rule, then the
blur, then the clamp).
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F


_GRIDS: dict[str, torch.Tensor] = {}


def _grid3(device: torch.device) -> torch.Tensor:
    """The offsets -1, 0, 1 on ``device``, made once (no host copy inside a CUDA graph capture)."""
    key = str(device)
    if key not in _GRIDS:
        _GRIDS[key] = torch.tensor([-1.0, 0.0, 1.0], device=device)
    return _GRIDS[key]


def gaussian_kernel3(sigma: float | torch.Tensor, device) -> torch.Tensor:
    """3x3 Gaussian as a depthwise conv weight ``(3, 1, 3, 3)`` (torchvision's kernel).

    ``sigma`` may be a one-element tensor on ``device`` (a CUDA graph's schedule); a
    tensor sigma of 0 gives the identity kernel.
    """
    x = _grid3(torch.device(device))
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.clamp_min(1e-6)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    return torch.outer(k1, k1).expand(3, 1, 3, 3).contiguous()


def blur(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """One depthwise 3x3 Gaussian with reflect padding, as torchvision's ``gaussian_blur``; sigma 0 = identity.

    On CPU a batch is blurred image by image, each as three one-channel
    planes: oneDNN's grouped convolution slows down 4-5x for a batch of 12
    (a layer sweep), and this form gives the same bits (tested).
    """
    if not isinstance(sigma, torch.Tensor) and sigma <= 0:
        return x
    k = gaussian_kernel3(sigma, x.device)
    if x.device.type != "cpu" or x.shape[0] == 1:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, groups=3)
    b, c, h, w = x.shape
    return torch.cat([F.conv2d(F.pad(xi.reshape(c, 1, h, w), (1, 1, 1, 1), mode="reflect"), k[:1])
                      for xi in x]).reshape(b, c, h, w)


@contextlib.contextmanager
def float32(dev: torch.device, tf32: bool = False):
    """Full float32 on a CUDA GPU for the duration (TF32 off, whatever the process set).

    ``tf32=True`` lets TF32 matrix products run: a config whose precision
    resolved to ``tf32`` (:mod:`vitrep.precision`) passes it, through
    :func:`vitrep.reconstruction.reconstruct_many`.
    """
    if dev.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def linear(start: float, end: float, n: int, total: int) -> float:
    return start if total <= 1 else start + (end - start) * n / (total - 1)


class Stepper:
    """The update rule of a batch: the paper's plain step (``gd``), normalised GD (``ngd``: the step's size in
    pixel units, the class images' rule), or Adam; a step-size scale per row (back-off).

    ``step(x, grad, lr, rows)`` returns ``x - lr * direction`` for the batch
    rows ``rows`` (``None`` = all).  The plain step with no back-off is the
    paper's expression exactly.  Adam's moments are kept per pixel and row, in
    tensors updated in place (a CUDA graph captures them).
    """

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, kind: str, shape, device) -> None:
        self.kind = kind
        b = shape[0]
        self.scale = torch.ones(b, 1, 1, 1, device=device)
        self.scaled = False
        if kind == "adam":
            self.m = torch.zeros(shape, device=device)
            self.v = torch.zeros(shape, device=device)
            self.t = torch.zeros(b, 1, 1, 1, device=device)

    def reset(self) -> None:
        """Forget all state (after a CUDA graph's warm-up steps)."""
        if self.kind == "adam":
            for s in (self.m, self.v, self.t):
                s.zero_()

    def back_off(self, row: int) -> None:
        """Row ``row`` goes on at a quarter of its step, its Adam moments forgotten."""
        self.scale[row] *= 0.25
        self.scaled = True
        if self.kind == "adam":
            self.m[row] = 0
            self.v[row] = 0
            self.t[row] = 0

    def step(self, x: torch.Tensor, grad: torch.Tensor, lr, rows: Optional[list[int]]) -> torch.Tensor:
        if self.kind == "ngd":  # the gradient's direction, its size in pixel units: lr * g / mean|g|
            return x - lr * (grad / (grad.abs().mean() + 1e-12))
        if self.kind == "gd":
            if not self.scaled:
                return x - lr * grad  # the paper's step, bit for bit
            return x - lr * self.scale[rows if rows is not None else slice(None)] * grad
        b1, b2 = self.BETAS
        sel = slice(None) if rows is None else rows
        m, v, t = self.m[sel], self.v[sel], self.t[sel]
        if rows is None:  # in place: the state tensors themselves (CUDA-graph safe)
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            t.add_(1)
        else:  # a subset of rows: compute on copies, write back
            m = m * b1 + (1 - b1) * grad
            v = v * b2 + (1 - b2) * grad * grad
            t = t + 1
            self.m[rows], self.v[rows], self.t[rows] = m, v, t
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        return x - lr * self.scale[sel] * m_hat / (v_hat.sqrt() + self.EPS)


class Schedule:
    """The step size and blur sigma of each step ``n`` of ``steps``: each decays linearly from start to end,
    or follows the given function of ``n``."""

    def __init__(self, steps: int, lr: tuple[float, float], sigma) -> None:
        self.steps, self.lr0, self.lr1 = steps, lr[0], lr[1]
        self._sigma = sigma if callable(sigma) else (lambda n, s=sigma: linear(s[0], s[1], n, steps))

    def lr(self, n: int) -> float:
        return linear(self.lr0, self.lr1, n, self.steps)

    def sigma(self, n: int) -> float:
        return self._sigma(n)

    def table(self) -> tuple[list[float], list[float]]:
        """Every step's (lr, sigma), and a 0 after the last: what a CUDA graph keeps on the GPU."""
        return ([self.lr(n) for n in range(self.steps)] + [0.0], [self.sigma(n) for n in range(self.steps)] + [0.0])


class Update:
    """One whole step of a batch: the rule (:class:`Stepper`), the blur, the clamp to [0, 1] if asked.

    ``__call__(x, grad, n, rows)`` takes step ``n``'s schedule; :meth:`apply`
    takes the step size and sigma themselves (tensors, in a CUDA graph).
    """

    def __init__(self, stepper: Stepper, schedule: Schedule, clamp: bool = False) -> None:
        self.stepper, self.schedule, self.clamp = stepper, schedule, clamp

    def apply(self, x: torch.Tensor, grad: torch.Tensor, lr, sigma, rows=None) -> torch.Tensor:
        x = blur(self.stepper.step(x.detach(), grad, lr, rows), sigma)
        return x.clamp_(0, 1) if self.clamp else x

    def __call__(self, x: torch.Tensor, grad: torch.Tensor, n: int, rows) -> torch.Tensor:
        return self.apply(x, grad, self.schedule.lr(n), self.schedule.sigma(n), rows)

