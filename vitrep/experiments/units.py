"""Unit visualisation as an experiment: :class:`UnitsRun`, :func:`run`, a :class:`~.Report`.

With an image, ``top`` units of the chosen kind and layer are picked by their
mean activation on it (:func:`vitrep.units.top_units`) before the run; a
``match`` objective matches that image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

from ..units import UnitsConfig
from . import Report


@dataclass(frozen=True)
class UnitsRun:
    """A units config (:func:`vitrep.units.make_units_config`), an optional image and the output folder."""

    config: UnitsConfig
    image: Any = None  # a file, a bundled sample's name, a PIL image or a prepared tensor (None: none)
    top: Optional[tuple[str, str, int]] = None  # (kind, layer, k): replace the objectives by the image's top-k units
    out: str = ""  # unit_*.png, units.png and result.json ("": none)


def objectives_for(kind: str, layer, units) -> tuple[str, ...]:
    """One objective text per unit: ``kind(layer, u)`` (a layer name quoted, a block number bare)."""
    where = str(layer) if kind in ("mlp", "head") else repr(str(layer))
    return tuple(f"{kind}({where}, {u})" for u in units)


def write_units(u, out: Path) -> list[Path]:
    from ..images import to_pil
    from ..units.run import as_grid

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, im in enumerate(u.images):
        files.append(out / f"unit_{i:02d}.png")
        to_pil(im).save(files[-1])
    to_pil(as_grid(u)).save(out / "units.png")
    (out / "result.json").write_text(u.to_json())
    return files + [out / "units.png", out / "result.json"]


def run(config: UnitsRun, memo=None, executor=None, progress: Optional[Callable] = None, on_wait=None,
        queue_limit: Optional[int] = None) -> Report:
    """Pick the top units if asked, visualise through ``memo`` and write the files; ``executor`` is taken for
    the common shape: a units run runs here."""
    from ..models.pool import load_model
    from ..units import run_units, top_units
    from ..units.run import validate
    from .inputs import model_image

    cfg = config.config
    lm = load_model(cfg.model, cfg.device, progress=progress is not None)  # weights problems before any step
    image = None if config.image is None else model_image(config.image, lm.size)
    lines = []
    if config.top is not None:
        if image is None:
            from ..errors import ConfigError

            raise ConfigError("Choose an image to rank the units by their activation on it.")
        kind, layer, k = config.top
        ranked = top_units(lm, image, kind, layer, k, cfg.surgery, cfg.pos_embed)
        cfg = validate(replace(cfg, objectives=objectives_for(kind, layer, [i for i, _ in ranked])))
        lines.append(f"top {len(ranked)} {kind} units at {layer} on the image: "
                     + ", ".join(f"{i} ({v:.3g})" for i, v in ranked))
    u = run_units(cfg, image, memo, progress=progress, on_wait=on_wait, queue_limit=queue_limit)
    lines.append(f"{u.status}: {len(u.images)} unit(s), {u.steps} steps, {cfg.param} image"
                 + (" (from the memo)" if u.from_cache else f", {u.seconds:.1f} s"))
    lines += [f"  {o}: {a:.4g} -> {b:.4g}" for o, a, b in zip(cfg.objectives, u.start_scores, u.scores)]
    files = []
    if config.out:
        files = write_units(u, Path(config.out))
        lines.append(f"wrote {config.out}/units.png, unit_*.png, result.json")
    rows = [{"objective": o, "start": a, "score": b} for o, a, b in zip(cfg.objectives, u.start_scores, u.scores)]
    return Report("units", f"{cfg.model.label()}: {len(u.images)} unit(s)", lines, rows, {"curves": u.curves},
                  files, u)
