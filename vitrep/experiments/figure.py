"""A figure of the write-up as an experiment: :class:`FigureConfig`, :func:`run`, a :class:`~.Report`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import Report


@dataclass(frozen=True)
class FigureConfig:
    """One figure run: the figure (number or preset name), budget, optimizer(s), images and output folder."""

    figure: str  # a figure number ("2") or preset name ("layer-depth")
    budget: str = "demo"  # quick | demo | full
    optimizer: str = "gd"  # gd (the write-up's method) | adam | both
    steps: Optional[int] = None  # every panel this many steps (overrides the budget's)
    images: tuple[str, ...] = ()  # the user's images, in the figure's order (default: its bundled ones)
    weights: Optional[str] = None  # a checkpoint file standing in for trained weights
    device: str = "auto"
    out: str = ""  # default: out/<preset name>


def run(config: FigureConfig, memo=None, executor=None, progress: Optional[Callable] = None,
        say: Optional[Callable[[str], None]] = None) -> Report:
    """Run the figure's panels (through ``memo``) and judge its claims; the report's lines are the verdicts."""
    from ..figures import get_figure, run_figure

    fig = get_figure(config.figure)
    out = Path(config.out or f"out/{fig.name}")
    summary = run_figure(fig, out, config.budget, config.weights, memo, config.device, say=say, progress=progress,
                         images=list(config.images) or None, optimizer=config.optimizer, steps=config.steps,
                         executor=executor)
    lines = ([] if fig.claims else ["The write-up states no finding for this figure: its panels are shown without "
                                    "a verdict."])
    lines += [v["line"] for v in summary["verdicts"]] + list(summary["disagreements"])
    files = [out / "contact_sheet.png", out / "distances.json"] + [out / r["file"] for r in summary["panels"]]
    return Report("figure", f"Figure {fig.figure}: {fig.title}", lines, summary["panels"],
                  {"verdicts": summary["verdicts"]}, files, summary)
