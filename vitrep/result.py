"""What a run reports while it goes (:class:`Progress`) and what it leaves (:class:`Result`).

Both are plain numbers, lists and uint8 arrays; a result round-trips through
the disk memo as npz + JSON, never pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from .version import __version__
from .packing import pack, unpack
from .config import ReconstructConfig


@dataclass
class Progress:
    """What a progress callback sees at each report step: of a reconstruction, of one batch of a grid
    (``batch``), or of a class image (its rows hold the logits instead of the distances)."""

    step: int
    total: int
    seconds: float
    rows: list[dict]  # per config: step, loss, embedding_distance, input_distance, psnr, ssim
    images: list[np.ndarray]  # current reconstruction per config, uint8 (H, W, 3)
    baselines: list[float] = field(default_factory=list)  # per config: the bar m_r
    batch: int = 0  # the batch's place among the batches of a grid (vitrep.running.runs.plan_batches)
    index: tuple = ()  # in a grid: the place of each row among the grid's configs (rows[i] is configs[index[i]])

    @property
    def steps_per_second(self) -> float:
        return self.step / self.seconds if self.seconds > 0 else 0.0


ProgressFn = Callable[[Progress], Optional[bool]]
CURVE_KEYS = ("step", "loss", "embedding_distance", "input_distance", "psnr", "ssim")


@dataclass
class Result:
    """A finished (or stopped, or diverged) reconstruction: numpy and JSON only."""

    config: ReconstructConfig
    status: str  # "done" | "diverged at step k" | "stopped"
    steps: int
    seconds: float
    device: str
    weights_identity: str
    target: np.ndarray  # uint8 (H, W, 3)
    image: np.ndarray  # uint8 (H, W, 3)
    curves: dict[str, list]
    baseline: dict[str, float]
    final: dict[str, float]
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)
    from_cache: bool = False
    backoffs: int = 0  # times a blow-up sent the run back to its best image at a quarter of the step

    @property
    def success(self) -> bool:
        return bool(self.final["embedding_distance"] < self.baseline["embedding_distance"])

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict:
        """The documented ``result.json`` content."""
        return {
            "vitrep_version": __version__, "torch_version": torch.__version__,
            "config": self.config.to_dict(), "weights_identity": self.weights_identity,
            "device": self.device, "status": self.status, "steps": self.steps,
            "seconds": self.seconds, "steps_per_second": self.steps_per_second,
            "final": self.final, "baseline": self.baseline, "success": self.success,
            "backoffs": self.backoffs, "from_cache": self.from_cache,
        }

    def curves_csv(self) -> str:
        lines = [",".join(CURVE_KEYS)]
        for i in range(len(self.curves["step"])):
            lines.append(",".join(repr(self.curves[k][i]) for k in CURVE_KEYS))
        return "\n".join(lines) + "\n"

    # --- (de)serialisation for the disk memo: npz + JSON, no pickle -----------------------------
    def to_bytes(self) -> bytes:
        meta = {k: getattr(self, k) for k in ("status", "steps", "seconds", "device", "weights_identity",
                                              "curves", "baseline", "final", "backoffs")}
        meta["config"] = self.config.to_dict()
        meta["snapshot_steps"] = [s for s, _ in self.snapshots]
        arrays = {"target": self.target, "image": self.image}
        arrays.update({f"snap{i}": im for i, (_, im) in enumerate(self.snapshots)})
        return pack(meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Result":
        meta, z = unpack(data)
        snaps = [(s, z[f"snap{i}"]) for i, s in enumerate(meta.pop("snapshot_steps"))]
        cfg = ReconstructConfig.from_dict(meta.pop("config"))
        return cls(config=cfg, target=z["target"], image=z["image"], snapshots=snaps, from_cache=True, **meta)
