"""The arithmetic of a descent: blur, schedules, losses, precision, the update rule and the blow-up guard.

Pure tensor code with no model, memo or reporting in it, shared by
reconstruction (:mod:`vitrep.reconstruct`) and class generation
(:mod:`vitrep.generate`) through the loop (:mod:`vitrep.loop`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Optional

import torch
import torch.nn.functional as F

MAX_BACKOFFS = 4  # a fifth blow-up ends the row as diverged
BLOWUP_FACTOR = 10.0  # loss this many times its best so far = a blow-up
BLOWUP_PIXEL = 20.0  # a pixel this far from 0.5 = running off (images live in [0, 1])


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

    ``tf32=True`` lets TF32 matrix products run: benchmarks/precision.py passes
    it (through ``reconstruct_many(tf32=True)``) to measure what TF32 would
    change; a config never does.
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


def loss_of(kind: str, scale: float, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = out - target
    return scale * (d.abs().sum() if kind == "l1" else (d * d).sum())


class Stepper:
    """The update rule of a batch: the page's plain step, or Adam; a step-size scale per row (back-off).

    ``step(x, grad, lr, rows)`` returns ``x - lr * direction`` for the batch
    rows ``rows`` (``None`` = all).  The plain step with no back-off is the
    page's expression exactly.  Adam's moments are kept per pixel and row, in
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
        if self.kind == "gd":
            if not self.scaled:
                return x - lr * grad  # the page's step, bit for bit
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


class BlowupGuard:
    """Watches each row's loss and image; at a blow-up the row goes back to its best image.

    A blow-up is a non-finite loss, a loss ``BLOWUP_FACTOR`` times its best so
    far, or a pixel ``BLOWUP_PIXEL`` away from mid-grey (patches running off).
    The row's best image (lowest loss) is kept; on a blow-up it is restored
    and the caller scales the row's step by 1/4.  After ``MAX_BACKOFFS``
    back-offs the next blow-up ends the row as diverged.  Off (``backoff``
    False), a non-finite loss still ends a row: nothing else is watched.
    """

    def __init__(self, rows: int, enabled: bool) -> None:
        self.enabled = enabled
        self.best_loss = [math.inf] * rows
        self.best: list[Optional[torch.Tensor]] = [None] * rows
        self.backoffs = [0] * rows

    def check(self, n: int, rows: list[int], losses: torch.Tensor, x: torch.Tensor) -> tuple[list[int], list[int]]:
        values = losses.tolist()
        far = ((x - 0.5).abs().flatten(1).amax(1) > BLOWUP_PIXEL).tolist() if self.enabled else [False] * len(rows)
        restored, dead = [], []
        for j, i in enumerate(rows):
            v = values[j]
            blown = not math.isfinite(v) or (self.enabled and (far[j] or v > BLOWUP_FACTOR * self.best_loss[i]))
            if blown:
                if not self.enabled or self.best[i] is None or self.backoffs[i] >= MAX_BACKOFFS:
                    dead.append(i)
                else:
                    self.backoffs[i] += 1
                    restored.append(i)
            elif v < self.best_loss[i]:
                self.best_loss[i] = v
                if self.enabled:
                    self.best[i] = x[j].detach().clone()
        return restored, dead

    def best_image(self, row: int) -> torch.Tensor:
        return self.best[row]
