"""The recorder of a descent: each row's curves, its latest image, snapshots, and what the progress callback sees.

One :class:`Recorder` serves reconstruction and class generation: the loop's
:class:`vitrep.descent.loop.Rows` calls :meth:`Recorder.record` at every
report step with per-row metric tensors and :meth:`Recorder.report` to ask
the caller's callback whether to stop.  ``derive`` turns the measured
metrics into the curves' values (a reconstruction's mean squared error into
PSNR); ``seen`` gives the image to keep for a row (the step's image, or a
class image's whole canvas).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..images import to_uint8
from ..result import Progress, ProgressFn

MAX_SNAPSHOTS = 24


def psnr_of(mse: float) -> float:
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


class Recorder:
    """Curves (``step`` and ``keys``) per row, each row's latest image, snapshots every ``snap_every`` report steps."""

    def __init__(self, start: torch.Tensor, keys: Sequence[str], steps: int, every: int,
                 progress: Optional[ProgressFn] = None, baselines: Sequence[float] = (),
                 derive: Callable[[dict], dict] = lambda v: v, snapshots: Optional[int] = MAX_SNAPSHOTS,
                 seen: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None) -> None:
        self.keys, self.steps, self.progress, self.derive = ("step", *keys), steps, progress, derive
        self.baselines = list(baselines)
        rows = start.shape[0]
        self.curves = [{k: [] for k in self.keys} for _ in range(rows)]
        self.snapshots: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(rows)]
        self.last = [to_uint8(start[i]) for i in range(rows)]
        self.snap_every = 1 if snapshots is None else every * max(1, math.ceil(steps / every / snapshots))
        self.seen = seen or (lambda x, j: x[j])
        self.t0 = time.perf_counter()

    def record(self, step: int, rows: list[int], metrics: dict, x: torch.Tensor) -> None:
        """Append step ``step`` of ``rows`` (``metrics``: per-row tensors of the batch ``x``)."""
        values = {k: v.tolist() for k, v in metrics.items()}
        for j, i in enumerate(rows):
            row = self.derive({k: float(v[j]) for k, v in values.items()})
            c = self.curves[i]
            c["step"].append(step)
            for k in self.keys[1:]:
                c[k].append(row[k])
            self.last[i] = to_uint8(self.seen(x, j))
            if step % self.snap_every == 0 or step == self.steps:
                self.snapshots[i].append((step, self.last[i]))

    def report(self, step: int) -> bool:
        """Tell the callback; True when it asks to stop."""
        if self.progress is None:
            return False
        rows = [{k: v[-1] for k, v in c.items()} if c["step"] else {} for c in self.curves]
        return bool(self.progress(Progress(step, self.steps, self.seconds, rows, list(self.last), self.baselines)))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def final(self, i: int, keys: Sequence[str]) -> dict:
        c = self.curves[i]
        return {k: (c[k][-1] if c["step"] else float("nan")) for k in keys}

    def snapshots_of(self, i: int) -> list[tuple[int, np.ndarray]]:
        """Row ``i``'s snapshots, ending with its latest image."""
        snaps = list(self.snapshots[i])
        if snaps and snaps[-1][1] is not self.last[i]:
            snaps.append((self.curves[i]["step"][-1] if self.curves[i]["step"] else 0, self.last[i]))
        return snaps
