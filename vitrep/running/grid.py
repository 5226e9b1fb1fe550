"""A grid of reconstructions: run it through the memo, then a table and a contact sheet of it.

A layer sweep, an ablation survey and a figure are all grids: cells of
(image, config) with labels saying what each cell varies (image, model,
surgery, layer, ...).  :func:`run_grid` runs them with
:func:`vitrep.running.runs.run_batch` (memo hits read, misses batched by shared model
and schedule); :class:`Grid` gives the CSV table and the contact sheet that
the command line writes and the dashboard offers for download.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from PIL import Image

from .memo import Memo
from ..config import ReconstructConfig
from .queue import OnWait
from ..result import ProgressFn, Result
from .chunks import plan_batches
from .runs import run_batch
from ..sheets import contact_sheet
from ..models.taps import describe_tap

COLUMNS = ("status", "steps", "embedding_distance", "baseline_embedding_distance", "input_distance", "psnr",
           "ssim", "success")


@dataclass(frozen=True)
class Cell:
    """One reconstruction of a grid; ``labels`` name what it varies, in column order (e.g. image, layer)."""

    image: torch.Tensor
    config: ReconstructConfig
    labels: dict = field(default_factory=dict, compare=False)


def default_caption(cell: Cell, r: Result) -> str:
    f, b = r.final, r.baseline
    what = " ".join(str(v) for k, v in cell.labels.items() if k != "layer")
    return (f"{what}\n{describe_tap(cell.config.tap)}  PSNR {f['psnr']:.1f} dB SSIM {f['ssim']:.2f}\n"
            f"m_g {f['embedding_distance']:.3g} {'<' if r.success else '>='} m_r {b['embedding_distance']:.3g}")


@dataclass
class Grid:
    """The cells of a grid and their results (``None`` where a stopped grid never ran the cell)."""

    cells: list[Cell]
    results: list[Optional[Result]]

    def done(self) -> list[tuple[Cell, Result]]:
        return [(c, r) for c, r in zip(self.cells, self.results) if r is not None]

    @property
    def stopped(self) -> bool:
        return any(r is None or r.status == "stopped" for r in self.results)

    def rows(self) -> list[dict]:
        """One row per finished cell: its labels, then the numbers of :data:`COLUMNS`."""
        out = []
        for c, r in self.done():
            f = r.final
            out.append({**c.labels, "status": r.status, "steps": r.steps, "embedding_distance": f["embedding_distance"],
                        "baseline_embedding_distance": r.baseline["embedding_distance"],
                        "input_distance": f["input_distance"], "psnr": f["psnr"], "ssim": f["ssim"],
                        "success": r.success})
        return out

    def csv(self, extra: Optional[Sequence[str]] = None) -> str:
        """The table as CSV (``extra``: further per-row values, e.g. the file each tile was written to)."""
        rows = self.rows()
        head = list(dict.fromkeys(k for row in rows for k in row)) if rows else list(COLUMNS)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(head + (["file"] if extra is not None else []))
        for i, row in enumerate(rows):
            w.writerow([row.get(k, "") for k in head] + ([extra[i]] if extra is not None else []))
        return buf.getvalue()

    def sheet(self, title: str, cols: int = 6, caption: Callable[[Cell, Result], str] = default_caption,
              target: bool = False) -> Image.Image:
        """The contact sheet: one tile per finished cell (``target``: the first cell's target first)."""
        done = self.done()
        tiles = [(done[0][1].target, "target")] if target and done else []
        tiles += [(r.image, caption(c, r)) for c, r in done]
        return contact_sheet(tiles, title, cols=cols)


def batches(cells: Sequence[Cell]) -> list[list[int]]:
    """The batches :func:`run_grid` runs (a progress display counts them)."""
    return plan_batches([c.config for c in cells])


def run_grid(cells: Sequence[Cell], memo: Optional[Memo] = None, progress: Optional[ProgressFn] = None,
             on_wait: Optional[OnWait] = None, queue_limit: Optional[int] = None, executor=None) -> Grid:
    """Run every cell through the memo (see :func:`vitrep.running.runs.run_batch`); a stopped grid leaves ``None`` s.

    ``executor`` (a :class:`vitrep.running.distributed.RayExecutor`) runs the cells on a Ray cluster instead.
    """
    cells = list(cells)
    results = run_batch([c.image for c in cells], [c.config for c in cells], memo, progress, on_wait, queue_limit,
                        executor=executor)
    return Grid(cells, results)
