"""Class input generation as an experiment: :class:`GenerateRun`, :func:`run`, a :class:`~.Report`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..generate import GenerateConfig, Generated
from . import Report


@dataclass(frozen=True)
class GenerateRun:
    """A generation config (:func:`vitrep.generate.make_generate_config`) and the folder its files go to."""

    config: GenerateConfig
    out: str = ""  # generated.png, stage_*.png and result.json ("": none)


def write_generated(g: Generated, out: Path) -> list[Path]:
    from ..images import to_pil

    out.mkdir(parents=True, exist_ok=True)
    to_pil(g.image).save(out / "generated.png")
    files = [out / "generated.png"]
    for s, im in g.stages:
        files.append(out / f"stage_{s:05d}.png")
        to_pil(im).save(files[-1])
    (out / "result.json").write_text(json.dumps({"config": g.config.to_dict(), "status": g.status, "steps": g.steps,
                                                 "seconds": g.seconds, "top5": g.top5, "margin": g.margin,
                                                 "curves": g.curves}, indent=2) + "\n")
    return files + [out / "result.json"]


def run(config: GenerateRun, memo=None, executor=None, progress: Optional[Callable] = None, on_wait=None,
        queue_limit: Optional[int] = None) -> Report:
    """Generate through ``memo`` (queued per device like a reconstruction) and write the files; ``executor``
    is taken for the common shape: a generation runs here."""
    from ..generate import run_generate
    from ..models.pool import load_model

    cfg = config.config
    load_model(cfg.model, cfg.device, progress=progress is not None)  # weights problems before any step
    out = Path(config.out) if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    g = run_generate(cfg, memo, progress=progress, on_wait=on_wait, queue_limit=queue_limit)
    lines = [f"{g.status}: class {cfg.class_index} logit {g.curves['target_logit'][-1]:.3g}, best other "
             f"{g.curves['best_other_logit'][-1]:.3g}; top-5 {', '.join(n for _, n, _ in g.top5)}"]
    files = []
    if out is not None:
        files = write_generated(g, out)
        lines.append(f"wrote {out}/generated.png, stage_*.png, result.json")
    return Report("generate", f"{cfg.model.label()}: class {cfg.class_index}", lines,
                  [{"index": i, "name": n, "logit": v} for i, n, v in g.top5], {"curves": g.curves}, files, g)
