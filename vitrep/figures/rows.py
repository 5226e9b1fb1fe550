"""A finished panel as a row of ``distances.json``: the numbers the checks read (:mod:`vitrep.figures.checks`)."""

from __future__ import annotations

import math

import numpy as np

from ..result import Result

def neighbour_correlations(tiles: np.ndarray) -> np.ndarray:
    """Per filter, the correlation of horizontally adjacent weights: ~0 for random filters, high for wavelets."""
    a, b = tiles[:, :, :-1, :].reshape(len(tiles), -1), tiles[:, :, 1:, :].reshape(len(tiles), -1)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 0.0)


def high_frequency(image: np.ndarray, target: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of ``image`` over the target's own (uint8 (H, W, 3) arrays)."""
    def energy(x: np.ndarray) -> float:
        x = x.astype(np.float64) / 255.0
        lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
        return float((lap ** 2).mean())

    return energy(image) / max(energy(target), 1e-12)


def reconstruction_row(r: Result) -> dict:
    """The numbers of a finished reconstruction that the checks read."""
    curves = r.curves
    start = {k: curves[k][0] for k in ("embedding_distance", "input_distance", "psnr", "ssim")} if curves["step"] else {}
    moved = {}
    if r.snapshots and r.snapshots[0][0] == 0:
        first = r.snapshots[0][1].astype(np.float64)
        moved = {"m_g_fraction": (r.final["embedding_distance"] / start["embedding_distance"]) if start else None,
                 "from_start": float(np.linalg.norm((r.image.astype(np.float64) - first) / 255.0)),
                 "noise": float(r.config.init_std * math.sqrt(r.image.size))}
    return {"status": r.status, "steps": r.steps, "final": r.final, "baseline": r.baseline, "success": r.success,
            "backoffs": r.backoffs, "seconds": r.seconds, "start": start, "moved": moved,
            "high_frequency": high_frequency(r.image, r.target), "config": r.config.to_dict()}
