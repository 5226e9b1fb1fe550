"""Objectives: what a descent minimises, one loss per batch row, and what is measured at a report step.

- :class:`EmbeddingMatch`: reconstruction.  Each row's target is a tap's output
  ``O_l(a)`` for its image; the loss is the paper's scaled L1 (or L2) between
  ``O_l(a_n)`` and it; a report measures m_g, the input distance, the mean
  squared error (for PSNR) and the structural similarity (SSIM, :func:`ssim`).  It also holds the paper's bar m_r, the distance
  to the output of the near-identical ``a' = a + N(0, 1/18)``.
- :class:`ClassLogit`: class images.  The loss is ``|C - logit_i|`` (the
  paper's C = 200); a report measures the target logit and the best other.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.taps import run_paths


SSIM_WINDOW = 11  # Wang et al. (2004): an 11x11 Gaussian window of sigma 1.5 (kornia's), constants K1 0.01, K2 0.03


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per row, the structural similarity of ``x`` (clipped to [0, 1], as it is shown) against ``ref``.

    kornia's SSIM over the valid window positions, averaged over pixels and
    colour channels: the same number as scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``.  1 for the image itself,
    about 0 for noise.  ``(B, 3, H, W)`` -> ``(B,)``.
    """
    from kornia.metrics import ssim as ssim_map

    x = x.detach().clamp(0, 1).float()
    return ssim_map(x, ref.float(), SSIM_WINDOW, max_val=1.0, padding="valid").flatten(1).mean(1)


def loss_of(kind: str, scale: float, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = out - target
    return scale * (d.abs().sum() if kind == "l1" else (d * d).sum())


class EmbeddingMatch:
    """Match each row's tap output to its target; rows may differ in tap, surgery and image."""

    def __init__(self, img: torch.Tensor, paths: Sequence, shift: torch.Tensor, loss: str, scale: float) -> None:
        self.img, self.paths, self.loss, self.scale = img, list(paths), loss, scale
        with torch.no_grad():
            self.targets = [t.detach() for t in run_paths(img, self.paths)]  # computed once
            shifted = run_paths(img + shift, self.paths)
        self.baselines = [{"embedding_distance": float(torch.linalg.vector_norm(s - t)),
                           "input_distance": float(torch.linalg.vector_norm(shift[i]))}
                          for i, (s, t) in enumerate(zip(shifted, self.targets))]

    def forward(self, x: torch.Tensor, rows: list[int]):
        outs = run_paths(x, [self.paths[i] for i in rows])
        return outs, torch.stack([loss_of(self.loss, self.scale, o, self.targets[i]) for o, i in zip(outs, rows)])

    def metrics(self, x: torch.Tensor, rows: list[int], outs, losses) -> dict:
        ref = self.img if len(rows) == self.img.shape[0] else self.img[rows]
        return {"loss": losses.detach(),
                "embedding_distance": torch.stack([torch.linalg.vector_norm(o.detach() - self.targets[i])
                                                   for o, i in zip(outs, rows)]),
                "input_distance": torch.linalg.vector_norm((x.detach() - ref).flatten(1), dim=1),
                "mse": ((x.detach().clamp(0, 1) - ref) ** 2).flatten(1).mean(1),
                "ssim": ssim(x, ref)}


class ClassLogit:
    """Drive one logit of a classifier to ``target`` (one row); scores are read on the canvas the caller gives."""

    def __init__(self, path: Sequence, class_index: int, target: float, size: int) -> None:
        self.path, self.index, self.target, self.size = list(path), class_index, target, size

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.path:
            x = op.fn(x)
        return x  # (B, classes)

    def forward(self, x: torch.Tensor, rows: list[int]):
        return None, (self.target - self.logits(x)[:, self.index]).abs()

    def score(self, canvas: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """Logits of ``canvas`` (resized to the model's input), the target logit and the best other."""
        S = self.size
        with torch.no_grad():
            x = canvas if canvas.shape[-1] == S else F.interpolate(canvas, size=(S, S), mode="bilinear",
                                                                   align_corners=False)
            lg = self.logits(x)[0]
        other = torch.cat([lg[:self.index], lg[self.index + 1:]])
        return lg, float(lg[self.index]), float(other.max())

    def metrics_of(self, canvas: torch.Tensor) -> dict:
        _, t, o = self.score(canvas)
        return {"loss": torch.tensor([abs(self.target - t)]), "target_logit": torch.tensor([t]),
                "best_other_logit": torch.tensor([o])}
