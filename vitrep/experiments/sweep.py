"""A grid of your own as an experiment (layers x removal sets x images): :class:`SweepConfig`, :func:`run`,
a :class:`~.Report`, one contact sheet and one CSV."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..config import ReconstructConfig
from ..models.taps import describe_tap
from . import Report
from .inputs import model_image, removal_sets, removed


@dataclass(frozen=True)
class SweepConfig:
    """Every cell takes ``base``'s model and options; its tap, removal set and image vary."""

    base: ReconstructConfig
    layers: tuple[str, ...]  # canonical taps, e.g. ("encoder-1", "stem"): :func:`parse_layers`
    surgeries: tuple[str, ...] = ("none",)  # removal-set labels: 'none' or components joined by ','
    images: tuple = ("cat",)  # files or sample names (or PIL images, prepared tensors)
    blocks: Optional[str] = None  # the blocks the removals apply to, e.g. "1-4,7" (default every block)
    optimizer: str = "auto"  # the cells' optimizer and step sizes; None: each layer's calibrated ones
    lr_start: Optional[float] = None
    lr_end: Optional[float] = None
    out: str = ""  # the folder for the tiles, sweep.csv and contact_sheet.png ("": none)


def parse_layers(text: str, ref) -> list[str]:
    """``'all'`` (every encoder/block/stage), or a list like ``'1-4,stem,only-encoder-3'`` -> canonical taps."""
    from ..models.surgery import parse_blocks

    adapter, depth = ref.adapter, ref.num_blocks
    if text.strip().lower() in ("all", ""):
        return adapter.sweep_taps(depth)
    taps = []
    for part in text.split(","):
        part = part.strip()
        if part.replace("-", "").isdigit() and "-" in part:
            taps += [adapter.parse_tap(k, depth) for k in parse_blocks(part)]
        elif part:
            taps.append(adapter.parse_tap(part, depth))
    return taps


def make_sweep_config(base: ReconstructConfig, layers: str = "all", surgeries: str = "none", images=("cat",),
                      blocks: Optional[str] = None, optimizer: Optional[str] = None, lr_start: Optional[float] = None,
                      lr_end: Optional[float] = None, out: str = "") -> SweepConfig:
    """A sweep from a person's text: layers like ``'1-12'``, removal sets like ``'none;attention;mlp,ln_2'``
    (each checked against the model here, so a wrong name is one sentence before anything starts)."""
    from ..models.surgery import make_surgery

    ref = base.model
    taps, sets = tuple(parse_layers(layers, ref)), tuple(removal_sets(surgeries))
    for label in sets:
        make_surgery(ref.adapter, removed(label), blocks, ref.adapter.surgery_blocks(ref.num_blocks))
    return SweepConfig(base, taps, sets, tuple(images) or ("cat",), blocks, optimizer or "auto", lr_start, lr_end,
                       out)


def plan_lines(config: SweepConfig) -> list[str]:
    """What a sweep will run, said before it runs."""
    n = len(config.images) * len(config.surgeries) * len(config.layers)
    return [f"{n} reconstructions ({len(config.images)} image(s) x {len(config.surgeries)} surgery set(s) x "
            f"{len(config.layers)} layer(s)), {config.base.steps} steps each"]


def _label(image, i: int) -> str:
    return image if isinstance(image, str) else f"image{i + 1}"


def cells(config: SweepConfig) -> list:
    """The grid's cells, image by image, removal set by removal set, layer by layer."""
    from ..config import make_config, options
    from ..running.grid import Cell

    base, ref = config.base, config.base.model
    kw = {f.name: getattr(base, f.name) for f in options()}  # every option as given ...
    kw.update(optimizer=config.optimizer, lr_start=config.lr_start, lr_end=config.lr_end)  # ... but the steps'
    out = []
    for i, image in enumerate(config.images):
        img = model_image(image, ref.input_size, base.resize)
        for surg in config.surgeries:
            out += [Cell(img, make_config(ref, tap, remove=removed(surg), blocks=config.blocks, **kw),
                         {"image": _label(image, i), "surgery": surg, "layer": tap}) for tap in config.layers]
    return out


def _caption(c, r) -> str:
    f = r.final
    return (f"{Path(c.labels['image']).stem} {c.labels['surgery']}\n{describe_tap(c.config.tap)}  m_g "
            f"{f['embedding_distance']:.3g}\nm_r {r.baseline['embedding_distance']:.3g}  |a-a_g| "
            f"{f['input_distance']:.3g}")


def write_grid(grid, config: SweepConfig, out: Path) -> list[Path]:
    """One PNG per cell, sweep.csv (a row per cell, naming its PNG) and contact_sheet.png."""
    from ..images import to_pil

    names = []
    for i, (c, r) in enumerate(grid.done()):
        names.append(f"{i:03d}_{Path(c.labels['image']).stem}_{c.labels['surgery'].replace(',', '+')}_"
                     f"{c.config.tap}.png")
        to_pil(r.image).save(out / names[-1])
    (out / "sweep.csv").write_text(grid.csv(names))
    title = f"{config.base.model.label()}: {config.base.steps} steps"
    grid.sheet(title, cols=len(config.layers), caption=_caption).save(out / "contact_sheet.png")
    return [out / n for n in names] + [out / "sweep.csv", out / "contact_sheet.png"]


def run(config: SweepConfig, memo=None, executor=None, progress: Optional[Callable] = None,
        say: Optional[Callable[[str], None]] = None) -> Report:
    """Run the grid through ``memo`` (on ``executor``'s workers where given) and write its files; ``say`` hears
    the :func:`plan_lines` once every cell is built and checked, before anything runs."""
    from ..running.grid import run_grid

    todo = cells(config)
    out = Path(config.out) if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made fails before anything runs
    for line in plan_lines(config) if say is not None else ():
        say(line)
    t0 = time.perf_counter()
    grid = run_grid(todo, memo, progress=progress, executor=executor)
    line = f"{len(grid.done())} reconstructions in {time.perf_counter() - t0:.1f} s"
    files = []
    if out is not None:
        files = write_grid(grid, config, out)
        line += f"; wrote {out}/contact_sheet.png and sweep.csv"
    return Report("sweep", f"{config.base.model.label()}: {config.base.steps} steps", [line], grid.rows(),
                  {"curves": [{**c.labels, **r.curves} for c, r in grid.done()]}, files, grid)
