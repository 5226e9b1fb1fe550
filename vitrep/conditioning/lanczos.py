"""The linear algebra, on any batched operator: Lanczos, the Frobenius norm, and what they say of the spectrum.

The operator ``J`` is applied, never formed (:class:`Operator`).  Lanczos
with full reorthogonalisation runs on the smaller Gram matrix; its largest
Ritz values are lower bounds on the largest singular values and its smallest
are upper bounds on the smallest, each with its residual and its change over
the last quarter of the iterations (see :mod:`vitrep.conditioning`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..errors import ConfigError
from .config import ConditionConfig


@dataclass
class Operator:
    """``J`` of each batch row, applied, never formed: ``jv(v)`` (B, n) -> (B, m), ``jtu(u)`` (B, m) -> (B, n)."""

    jv: Callable[[torch.Tensor], torch.Tensor]
    jtu: Callable[[torch.Tensor], torch.Tensor]
    n: int
    m: int
    rows: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    matvecs: int = 0

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """The smaller Gram matrix times ``x``: ``J J^T u`` when m < n, else ``J^T J v``."""
        self.matvecs += 2
        return self.jv(self.jtu(x)) if self.m < self.n else self.jtu(self.jv(x))

    @property
    def dim(self) -> int:
        return min(self.m, self.n)


def lanczos(op: Operator, steps: int, seed: int = 0,
            progress: Optional[Callable[[int, torch.Tensor], bool]] = None) -> tuple[list, list, int, bool]:
    """Lanczos with full reorthogonalisation on ``op.gram``, every row at once.

    Returns per row ``(Ritz values ascending, their residuals |beta_j s_ji|,
    the same-rank values at three quarters of the steps)``, the steps taken
    and whether ``progress(step, largest Ritz values)`` asked to stop (by
    returning True).
    """
    d, B = op.dim, op.rows
    # every row starts from the seed's vector, so a row of a batch is the row run alone
    q = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).expand(B, d).to(op.device)
    q = q / q.norm(dim=1, keepdim=True)
    Q, alphas, betas = [q], [], []
    prev, beta = torch.zeros_like(q), torch.zeros(B, dtype=torch.float64, device=op.device)
    for j in range(steps):
        w = op.gram(q.float()).double()
        alpha = (w * q).sum(1)
        w = w - alpha[:, None] * q - beta[:, None] * prev
        basis = torch.stack(Q, 1)  # (B, j+1, d)
        for _ in range(2):  # twice is enough (Kahan): keeps the basis orthogonal to rounding
            w = w - torch.einsum("bj,bjd->bd", torch.einsum("bd,bjd->bj", w, basis), basis)
        beta = w.norm(dim=1)
        alphas.append(alpha)
        betas.append(beta)
        if j + 1 == max(1, (3 * steps) // 4):
            earlier = _ritz(alphas, betas)[0]  # to see which values still move
        if progress is not None and j + 1 < steps and progress(j + 1, _ritz(alphas, betas)[0][:, -1]):
            theta, resid = _ritz(alphas, betas)
            return _rows(theta, resid, earlier if "earlier" in locals() else theta), len(alphas), True
        if j + 1 == steps or bool((beta <= 1e-12 * alphas[0].abs().clamp_min(1e-30)).all()):
            break  # an invariant subspace: the Ritz values are exact
        prev, q = q, w / beta.clamp_min(1e-300)[:, None]
        Q.append(q)
    theta, resid = _ritz(alphas, betas)
    return _rows(theta, resid, earlier if "earlier" in locals() else theta), len(alphas), False


def _rows(theta: torch.Tensor, resid: torch.Tensor, earlier: torch.Tensor) -> list[tuple[list, list, list]]:
    """Per row: Ritz values (ascending), residuals, and the same-rank Ritz values of the earlier step
    (the earlier run has fewer values: its ends are matched to these ends)."""
    out = []
    for b in range(theta.shape[0]):
        t, e = theta[b].tolist(), earlier[b].tolist()
        h = len(e) // 2
        matched = e[:h] + [math.nan] * (len(t) - len(e)) + e[h:]  # bottom with bottom, top with top
        out.append((t, resid[b].tolist(), matched))
    return out


def _ritz(alphas: list, betas: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues of each row's tridiagonal matrix and the residual of each Ritz pair."""
    a, b = torch.stack(alphas, 1), torch.stack(betas, 1)  # (B, j)
    k = a.shape[1]
    T = torch.diag_embed(a)
    if k > 1:
        T = T + torch.diag_embed(b[:, :-1], 1) + torch.diag_embed(b[:, :-1], -1)
    theta, S = torch.linalg.eigh(T)
    return theta.clamp_min(0), (b[:, -1:] * S[:, -1, :]).abs()


FLOAT32_FLOOR = 8 * torch.finfo(torch.float32).eps  # the Gram's products in float32: eigenvalues to about this x the top


def sigma_interval(theta: float, residual: float, top: float = 0.0) -> tuple[float, float]:
    """sigma given a Ritz value of the Gram matrix and its residual: the estimate and the interval's half-width.

    ``top`` (the largest Ritz value) adds the float32 floor: the operator itself is applied in float32, so
    eigenvalues within about ``FLOAT32_FLOOR * top`` of each other (or of 0) are not told apart.
    """
    residual = residual + FLOAT32_FLOOR * top
    lo, hi = math.sqrt(max(theta - residual, 0.0)), math.sqrt(theta + residual)
    return math.sqrt(theta), (hi - lo) / 2


def frobenius(op: Operator, probes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hutchinson's estimate of ||J||_F^2 per row, ``E ||J^T u||^2`` with random signs ``u``, and its standard error."""
    g = torch.Generator().manual_seed(seed + 1)
    vals = []
    for _ in range(probes):
        u = (torch.randint(0, 2, (op.m,), generator=g) * 2 - 1).float().expand(op.rows, op.m).to(op.device)
        vals.append(op.jtu(u).double().pow(2).sum(1))
        op.matvecs += 1
    v = torch.stack(vals)  # (probes, B)
    se = v.std(0) / math.sqrt(probes) if probes > 1 else torch.full_like(v[0], float("nan"))
    return v.mean(0), se


def spectrum_of(op: Operator, cfg: ConditionConfig, gain_along: Optional[torch.Tensor] = None,
                progress: Optional[Callable] = None) -> list[dict]:
    """Top and bottom of each row's spectrum, the Frobenius norm and the local gain (plain numbers)."""
    if cfg.k > op.dim:
        raise ConfigError(f"k = {cfg.k} is more singular values than this Jacobian has: its smaller side is "
                          f"{op.dim:,} (inputs {op.n:,}, outputs {op.m:,}).")
    t0 = time.perf_counter()
    per_row, steps, stopped = lanczos(op, cfg.lanczos_steps(op.dim), cfg.seed, progress)
    fro, fro_se = frobenius(op, cfg.probes, cfg.seed)
    gains = None
    if gain_along is not None:
        v = gain_along.reshape(op.rows, -1).float()
        gains = (op.jv(v).double().norm(dim=1) / v.double().norm(dim=1).clamp_min(1e-30)).tolist()
        op.matvecs += 1
    out = []
    for b, (thetas, resids, earlier) in enumerate(per_row):
        pairs = [sigma_interval(t, r, max(thetas)) for t, r in zip(thetas, resids)]
        change = [abs(math.sqrt(t) - math.sqrt(max(e, 0))) / max(math.sqrt(t), 1e-30) if e == e else math.inf
                  for t, e in zip(thetas, earlier)]
        k = min(cfg.k, len(pairs))
        top = list(reversed(pairs))[:k]
        bottom = pairs[:k]
        out.append({"sigma_top": [s for s, _ in top], "top_error": [e for _, e in top],
                    "top_residual": list(reversed(resids))[:k], "top_change": list(reversed(change))[:k],
                    "sigma_bottom": [s for s, _ in bottom], "bottom_error": [e for _, e in bottom],
                    "bottom_residual": resids[:k], "bottom_change": change[:k],
                    "frobenius_sq": float(fro[b]), "frobenius_sq_se": float(fro_se[b]),
                    "gain": None if gains is None else float(gains[b]), "iterations": steps,
                    "seconds": time.perf_counter() - t0, "status": "stopped" if stopped else "done"})
    return out
