"""What a spectrum depends on: :class:`ConditionConfig`, validated by :func:`make_condition_config`."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ReconstructConfig, validate
from ..errors import ConfigError

DEFAULT_K = 16


@dataclass(frozen=True)
class ConditionConfig:
    """What a spectrum depends on: the reconstruction config's model, tap, surgery and input options, and
    the estimator's own settings (frozen: a cache key)."""

    recon: ReconstructConfig
    k: int = DEFAULT_K  # singular values reported at each end
    iterations: int = 0  # Lanczos steps; 0: max(5k, 80), at most the Gram's size
    probes: int = 8  # random sign vectors for the Frobenius norm
    seed: int = 0

    def lanczos_steps(self, dim: int) -> int:
        return min(dim, self.iterations or max(5 * self.k, 80))

    def to_dict(self) -> dict:
        return {"recon": self.recon.to_dict(), "k": self.k, "iterations": self.iterations, "probes": self.probes,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "ConditionConfig":
        """The config ``to_dict`` wrote (a memo entry's)."""
        return cls(ReconstructConfig.from_dict(d["recon"]), d["k"], d["iterations"], d["probes"], d["seed"])


def make_condition_config(recon: ReconstructConfig, k: int = DEFAULT_K, iterations: int = 0, probes: int = 8,
                          seed: int = 0) -> ConditionConfig:
    """Validate the estimator's settings (k against the dimensions is checked once the tap's size is known)."""
    recon = validate(recon)
    for name, v, low in (("k", k, 1), ("iterations", iterations, 0), ("probes", probes, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{name} must be a whole number of at least {low}, not {v!r}.")
    if iterations and iterations < k:
        raise ConfigError(f"{iterations} Lanczos iterations cannot give {k} singular values; give at least {k}.")
    return ConditionConfig(recon, k, iterations, probes, seed)
