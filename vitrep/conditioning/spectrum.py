"""The estimated spectrum of one tap's Jacobian (:class:`Spectrum`): its numbers, what they bound, and its bytes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

from ..packing import pack, unpack
from .config import ConditionConfig


@dataclass
class Spectrum:
    """The estimated spectrum of one tap's Jacobian at one image (plain numbers: JSON in the memo)."""

    config: ConditionConfig
    input_dim: int
    output_dim: int
    side: str  # "output" (Lanczos on J J^T) or "input" (on J^T J)
    sigma_top: list[float]
    top_residual: list[float]  # ||G y - theta y|| of each top Ritz pair (units of sigma^2)
    top_error: list[float]  # half-width of the interval in which some singular value lies
    top_change: list[float]  # relative change over the last quarter of the iterations
    sigma_bottom: list[float]  # smallest Ritz values: upper bounds on the smallest singular values
    bottom_residual: list[float]
    bottom_error: list[float]
    bottom_change: list[float]
    frobenius_sq: float
    frobenius_sq_se: float
    gain: Optional[float]  # ||J v|| / ||v|| along v = a - a_0
    iterations: int
    matvecs: int
    seconds: float
    status: str = "done"  # or "stopped"
    from_cache: bool = False

    @property
    def null_dim_min(self) -> int:
        """Inputs the tap cannot tell apart to first order: at least n - m dimensions when the tap is smaller."""
        return max(0, self.input_dim - self.output_dim)

    @property
    def condition_estimate(self) -> float:
        """sigma_top[0] / sigma_bottom[0]: a lower bound on the condition number of J on its row space."""
        return self.sigma_top[0] / self.sigma_bottom[0] if self.sigma_bottom and self.sigma_bottom[0] > 0 else math.inf

    @property
    def effective_rank(self) -> float:
        """The stable rank ||J||_F^2 / sigma_max^2 (at most the rank)."""
        return self.frobenius_sq / self.sigma_top[0] ** 2 if self.sigma_top and self.sigma_top[0] > 0 else 0.0

    @property
    def effective_rank_se(self) -> float:
        return self.frobenius_sq_se / self.sigma_top[0] ** 2 if self.sigma_top and self.sigma_top[0] > 0 else 0.0

    def converged(self, tol: float = 1e-2) -> tuple[int, int]:
        """How many leading top and bottom values are converged: relative error and change both below ``tol``."""
        def count(sig, err, chg):
            n = 0
            for s, e, c in zip(sig, err, chg):
                if not (e <= tol * s and c <= tol):
                    break
                n += 1
            return n

        return (count(self.sigma_top, self.top_error, self.top_change),
                count(self.sigma_bottom, self.bottom_error, self.bottom_change))

    def summary(self) -> dict:
        """The documented ``condition.json`` content."""
        top, bottom = self.converged()
        return {"config": self.config.to_dict(), "status": self.status, "input_dim": self.input_dim,
                "output_dim": self.output_dim, "lanczos_on": "J J^T" if self.side == "output" else "J^T J",
                "sigma_top": self.sigma_top, "sigma_top_is": "lower bounds on the largest singular values (Ritz)",
                "top_residual": self.top_residual, "top_error": self.top_error, "top_change": self.top_change,
                "sigma_bottom": self.sigma_bottom, "bottom_residual": self.bottom_residual,
                "bottom_error": self.bottom_error, "bottom_change": self.bottom_change,
                "sigma_bottom_is": "upper bounds on the smallest singular values (Ritz values)",
                "condition_estimate": self.condition_estimate,
                "condition_estimate_is": "a lower bound on sigma_max / sigma_min of J on its row space",
                "null_dim_min": self.null_dim_min, "frobenius_sq": self.frobenius_sq,
                "effective_rank": self.effective_rank, "effective_rank_se": self.effective_rank_se,
                "converged_top": top, "converged_bottom": bottom, "gain_along_image_minus_start": self.gain,
                "iterations": self.iterations, "matvecs": self.matvecs, "seconds": self.seconds,
                "seconds_per_matvec_pair": self.seconds / max(1, self.iterations), "from_cache": self.from_cache}

    def to_bytes(self) -> bytes:
        meta = {k: v for k, v in asdict(self).items() if k not in ("config", "from_cache")}
        meta["config"] = self.config.to_dict()
        return pack(meta, {})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Spectrum":
        meta, _ = unpack(data)
        return cls(config=ConditionConfig.from_dict(meta.pop("config")), from_cache=True, **meta)
