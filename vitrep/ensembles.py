"""Many inputs, one output: the same image reconstructed from one tap from N starts at once.

The write-up argues non-invertibility from one descent (m_g -> 0 while
``||a - a_g||`` does not).  A seed ensemble shows it: N reconstructions of one
image from one layer, each from its own ``N(0.7, 1/20)`` start (seeds
``seed, seed + 1, ...``), run as one batch (rows never interact) and each
remembered in the memo like any run.  Where the N inputs agree the layer
determines the picture; where they spread apart at small m_g it does not.

:func:`summarise` gives, per ensemble: the per-pixel mean and standard
deviation over the members, the mean pairwise input distance
``||a_g,i - a_g,j||`` beside the mean m_g and m_r (pixel-space spread next
to output-space closeness), and the share of the image's pixels whose spread
exceeds the baseline perturbation's ``sigma = 1/18``: what this layer leaves
undetermined.  Members' snapshots fall on every report step (the ensemble
reports every ``steps / SNAPSHOTS`` steps), so the spread has a curve too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import numpy as np

from .config import ReconstructConfig, validate
from .errors import ConfigError
from .result import Result

UNDETERMINED = 1 / 18  # the baseline perturbation a' = a + N(0, 1/18): a pixel spread beyond it is not determined
SNAPSHOTS = 20  # report steps of an ensemble (every one of them a snapshot, so the spread has a curve)
MAX_SEEDS = 64


def member_configs(config: ReconstructConfig, seeds: int) -> list[ReconstructConfig]:
    """The ensemble's configs: ``config`` with seeds ``seed .. seed + seeds - 1``, reporting every
    ``steps / SNAPSHOTS`` steps (each report a snapshot)."""
    from . import limits

    if not 1 <= int(seeds) <= MAX_SEEDS:
        raise ConfigError(f"An ensemble takes 1 to {MAX_SEEDS} seeds, not {seeds}.")
    if limits.public_mode() and int(seeds) * config.steps > limits.max_steps():
        raise ConfigError(f"On this public server an ensemble runs at most {limits.max_steps():,} steps in all "
                          f"(seeds x steps); {seeds} seeds of {config.steps:,} steps are {int(seeds) * config.steps:,}.")
    every = max(1, config.steps // SNAPSHOTS)
    return [validate(replace(config, seed=config.seed + i, report_every=every)) for i in range(int(seeds))]


def _pixels(images: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([im.astype(np.float64) / 255.0 for im in images])  # (N, H, W, 3) in [0, 1]


def spread_of(images: Sequence[np.ndarray]) -> tuple[np.ndarray, float, float]:
    """Per-pixel spread over the members (``(H, W)``: the RMS over colours of each channel's standard
    deviation), its mean, and the mean pairwise input distance ``||a_i - a_j||``."""
    x = _pixels(images)
    std = np.sqrt(x.var(axis=0).mean(axis=-1)) if len(x) > 1 else np.zeros(x.shape[1:3])
    pairs = [float(np.linalg.norm(x[i] - x[j])) for i, j in itertools.combinations(range(len(x)), 2)]
    return std, float(std.mean()), float(np.mean(pairs)) if pairs else 0.0


@dataclass
class Ensemble:
    """N reconstructions of one image from one tap, and what they leave undetermined."""

    members: list[Result]
    mean: np.ndarray  # uint8 (H, W, 3): the members' per-pixel mean
    std: np.ndarray  # float (H, W): per-pixel spread over the members
    pairwise_distance: float  # mean ||a_g,i - a_g,j|| over pairs of members
    mean_m_g: float
    mean_m_r: float
    mean_input_distance: float
    undetermined: float  # share of pixels whose spread exceeds UNDETERMINED
    curves: dict  # step, spread, pairwise_distance, m_g (means over members), at every report step

    @property
    def target(self) -> np.ndarray:
        return self.members[0].target

    def summary(self) -> dict:
        """``ensemble.json``: the numbers, each member's final distances, and the config of the first."""
        return {"seeds": len(self.members), "pairwise_input_distance": self.pairwise_distance,
                "mean_m_g": self.mean_m_g, "mean_m_r": self.mean_m_r, "mean_input_distance": self.mean_input_distance,
                "mean_spread": float(self.std.mean()), "undetermined_share": self.undetermined,
                "undetermined_sigma": UNDETERMINED,
                "members": [{"seed": r.config.seed, "status": r.status, "final": r.final, "baseline": r.baseline}
                            for r in self.members],
                "config": self.members[0].config.to_dict(), "curves": self.curves}

    def curves_csv(self) -> str:
        keys = list(self.curves)
        rows = [",".join(keys)] + [",".join(repr(self.curves[k][i]) for k in keys)
                                   for i in range(len(self.curves["step"]))]
        return "\n".join(rows) + "\n"

    def heat_map(self) -> np.ndarray:
        """The spread over the target: the target in grey, spread above 1/18 in red (uint8 (H, W, 3))."""
        grey = self.target.astype(np.float64).mean(axis=-1, keepdims=True) / 255.0
        heat = np.clip(self.std / (2 * UNDETERMINED), 0, 1)[..., None]
        red = np.concatenate([np.ones_like(heat), 0.15 * np.ones_like(heat), 0.1 * np.ones_like(heat)], axis=-1)
        return (255 * ((1 - 0.8 * heat) * grey + 0.8 * heat * red)).clip(0, 255).astype(np.uint8)


def summarise(members: Sequence[Result]) -> Ensemble:
    """The ensemble's numbers from its finished members."""
    members = list(members)
    std, _, pairwise = spread_of([r.image for r in members])
    steps = sorted(set.intersection(*[{s for s, _ in r.snapshots} for r in members]))
    curves: dict = {"step": [], "spread": [], "pairwise_distance": [], "m_g": []}
    for s in steps:
        ims = [dict(r.snapshots)[s] for r in members]
        _, mean_std, pair = spread_of(ims)
        m_g = [r.curves["embedding_distance"][r.curves["step"].index(s)] for r in members if s in r.curves["step"]]
        curves["step"].append(int(s))
        curves["spread"].append(mean_std)
        curves["pairwise_distance"].append(pair)
        curves["m_g"].append(float(np.mean(m_g)) if m_g else math.nan)
    x = _pixels([r.image for r in members])
    return Ensemble(members, (x.mean(axis=0) * 255).round().astype(np.uint8), std, pairwise,
                    float(np.mean([r.final["embedding_distance"] for r in members])),
                    float(np.mean([r.baseline["embedding_distance"] for r in members])),
                    float(np.mean([r.final["input_distance"] for r in members])),
                    float((std > UNDETERMINED).mean()), curves)


def run_ensemble(image, config: ReconstructConfig, seeds: int = 8, memo=None,
                 progress: Optional[Callable] = None, lm=None, executor=None) -> Optional[Ensemble]:
    """Reconstruct ``image`` from ``config``'s tap from ``seeds`` starts as one batch, through the memo
    (``None`` when ``progress`` stopped it; the members that finished are remembered)."""
    from .running.runs import run_batch

    configs = member_configs(config, seeds)
    if lm is not None:  # a model given by hand (tests): one batch, no memo
        from .reconstruction import reconstruct_many

        members = reconstruct_many([image] * len(configs), configs, progress, lm=lm)
    else:
        members = run_batch([image] * len(configs), configs, memo, progress, executor=executor)
    if any(r is None or r.status == "stopped" for r in members):
        return None
    return summarise(members)
