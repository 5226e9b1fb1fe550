"""The stem's filters as an experiment (untrained beside the chosen weights): :class:`FiltersConfig`, :func:`run`,
a :class:`~.Report`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from ..models.registry import ModelRef
from . import Report


@dataclass(frozen=True)
class FiltersConfig:
    """The model (its weights: untrained, trained or a file), the tile scale and the folder for the PNGs."""

    model: ModelRef
    scale: int = 2  # enlarge each filter tile this many times
    device: str = "auto"
    out: str = ""  # filters_<weights>.png ("": none)


def weights_tag(weights: str) -> str:
    """``trained``/``untrained``, or a checkpoint file's stem: how the PNG and the line name the weights."""
    return weights if weights in ("trained", "untrained") else Path(weights).stem


def run(config: FiltersConfig, memo=None, executor=None, progress: Optional[Callable] = None) -> Report:
    """The filter grid of the untrained model and, where other weights are chosen, of those; nothing to memo."""
    from ..filters import filter_grid
    from ..images import to_pil
    from ..models.pool import load_model

    out = Path(config.out) if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    lines, rows, grids, files = [], [], {}, []
    for ref in dict.fromkeys([replace(config.model, weights="untrained"), config.model]):
        g = filter_grid(load_model(ref, config.device))
        tag = weights_tag(ref.weights)
        grids[tag] = g.image(scale=config.scale)
        rows.append({"weights": tag, "filters": g.count, "height": g.tiles.shape[1], "width": g.tiles.shape[2]})
        line = f"{tag}: {g.count} filters of {g.tiles.shape[1]}x{g.tiles.shape[2]}"
        if out is not None:
            files.append(out / f"filters_{tag}.png")
            to_pil(grids[tag]).save(files[-1])
            line += f" -> {files[-1]}"
        lines.append(line)
    return Report("filters", f"{config.model.label()}: stem filters", lines, rows, {"grids": grids}, files, grids)
