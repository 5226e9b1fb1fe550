"""A seed ensemble as an experiment: :class:`EnsembleRun`, :func:`run`, a :class:`~.Report`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import ReconstructConfig
from ..ensembles import UNDETERMINED, Ensemble, run_ensemble
from . import Report
from .inputs import model_image

FILES = ("target.png", "mean.png", "spread.png", "members.png", "ensemble.json", "curves.csv")


@dataclass(frozen=True)
class EnsembleRun:
    """N starts of one reconstruction: the config (its seed is the first member's), the image, the folder."""

    config: ReconstructConfig
    seeds: int = 8
    image: Any = "cat"
    out: str = ""


def ensemble_lines(e: Ensemble) -> list[str]:
    """What the ensemble says, in words first."""
    n = len(e.members)
    return [f"{n} reconstructions from {n} starts end {e.pairwise_distance:.3g} apart on average (input distance "
            f"between members), while their outputs sit at m_g {e.mean_m_g:.3g} from the target's (the bar m_r "
            f"{e.mean_m_r:.3g}); each ends {e.mean_input_distance:.3g} from the image.",
            f"{e.undetermined:.1%} of the image's pixels spread more than the baseline's sigma 1/18 over the members: "
            f"what this layer leaves undetermined (mean spread {float(e.std.mean()):.3g}, {UNDETERMINED:.3g} is "
            f"the bar)."]


def write_ensemble(e: Ensemble, out: Path) -> list[Path]:
    from ..images import to_pil
    from ..sheets import contact_sheet

    out.mkdir(parents=True, exist_ok=True)
    to_pil(e.target).save(out / "target.png")
    to_pil(e.mean).save(out / "mean.png")
    to_pil(e.heat_map()).save(out / "spread.png")
    tiles = [(r.image, f"seed {r.config.seed}\nm_g {r.final['embedding_distance']:.3g}") for r in e.members]
    contact_sheet(tiles, f"{len(e.members)} starts, one output", cols=min(8, len(tiles))).save(out / "members.png")
    (out / "ensemble.json").write_text(json.dumps(e.summary(), indent=2) + "\n")
    (out / "curves.csv").write_text(e.curves_csv())
    return [out / f for f in FILES]


def run(config: EnsembleRun, memo=None, executor=None, progress: Optional[Callable] = None) -> Report:
    """Run the ensemble through ``memo`` (``executor`` may run its batch elsewhere) and write its files."""
    from ..models.taps import describe_tap

    cfg = config.config
    e = run_ensemble(model_image(config.image, cfg.model.input_size, cfg.resize), cfg, config.seeds, memo,
                     progress, executor=executor)
    title = f"{cfg.model.label()}, {describe_tap(cfg.tap)}: {config.seeds} starts"
    if e is None:
        return Report("ensemble", title, ["The ensemble was stopped; its finished members are remembered."])
    lines = ensemble_lines(e)
    files = write_ensemble(e, Path(config.out)) if config.out else []
    if files:
        lines.append(f"wrote {config.out}/{', '.join(FILES)}")
    rows = [{"seed": r.config.seed, **r.final, "baseline_embedding_distance": r.baseline["embedding_distance"]}
            for r in e.members]
    return Report("ensemble", title, lines, rows, {"curves": e.curves}, files, e)
