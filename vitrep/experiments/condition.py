"""The Jacobian spectrum of one tap at an image as an experiment: :class:`ConditionRun`, :func:`run`, a
:class:`~.Report` with the table (``rows``), the spectra (``plots["spectra"]``) and the reading (``verdicts``)."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..conditioning import (DEFAULT_K, ConditionConfig, Spectrum, compare_table, make_condition_config, plot_spectra,
                            reading, run_condition, spectra_series)
from ..config import ReconstructConfig
from . import Report
from .inputs import model_image, removed

NOTE = "sigma_min is an upper bound (a Ritz value) and kappa a lower bound; 'converged' counts values known to 1%."


@dataclass(frozen=True)
class ConditionRun:
    """The tap (``recon``'s model, tap, removal and input options), the image, the removal sets to compare and
    the estimator's settings (:class:`vitrep.conditioning.ConditionConfig`)."""

    recon: ReconstructConfig
    image: Any = "cat"  # a file or sample name, a PIL image or a prepared (1, 3, H, W) tensor
    compare: tuple[str, ...] = ()  # removal-set labels ('none', 'attention', 'ln_1,ln_2'); (): recon's own
    blocks: Optional[str] = None  # the blocks the compared removals apply to (default every block)
    k: int = DEFAULT_K
    iterations: int = 0
    probes: int = 8
    seed: int = 0
    out: str = ""  # condition.json, spectrum.png and, comparing, compare.csv ("": none)


def spectrum_configs(config: ConditionRun) -> tuple[list[str], list[ConditionConfig]]:
    """A label and a validated config per spectrum: ``recon`` alone, or one per compared removal set (each with
    every other option of ``recon``)."""
    from ..config import make_config, options

    base = config.recon
    if not config.compare:
        recons, labels = [base], [base.surgery.describe()]
    else:
        kw = {f.name: getattr(base, f.name) for f in options()}
        recons = [make_config(base.model, base.tap, remove=removed(s), blocks=config.blocks, **kw)
                  for s in config.compare]
        labels = list(config.compare)
    return labels, [make_condition_config(r, config.k, config.iterations, config.probes, config.seed)
                    for r in recons]


def table_lines(spectra: Sequence[Spectrum], labels: Sequence[str]) -> list[str]:
    """The table the command line prints: one row per spectrum."""
    lines = [f"{'removed':<22}{'sigma_max':>12}{'sigma_min <=':>14}{'kappa >=':>11}{'eff. rank':>11}{'gain':>9}"
             f"{'converged':>11}"]
    for lab, s in zip(labels, spectra):
        top, bottom = s.converged()
        lines.append(f"{lab[:21]:<22}{s.sigma_top[0]:>12.4g}{s.sigma_bottom[0]:>14.4g}{s.condition_estimate:>11.4g}"
                     f"{s.effective_rank:>11.4g}{(s.gain if s.gain is not None else float('nan')):>9.3g}"
                     f"{f'{top}/{len(s.sigma_top)}, {bottom}/{len(s.sigma_bottom)}':>11}")
    return lines


def shape_line(spectra: Sequence[Spectrum], seconds: float) -> str:
    """What J is, its null space, and the Lanczos steps taken (or read from the memo)."""
    s = spectra[0]
    return (f"J is {s.output_dim:,} x {s.input_dim:,} (outputs x inputs); "
            + (f"its null space has at least {s.null_dim_min:,} dimensions. " if s.null_dim_min else "")
            + f"{s.iterations} Lanczos steps in {seconds:.1f} s"
            + (" (from the memo)" if all(x.from_cache for x in spectra) else ""))


def write_spectra(spectra: Sequence[Spectrum], labels: Sequence[str], out: Path, title: str) -> list[Path]:
    """spectrum.png, condition.json (one spectrum's summary, or every row and the table) and compare.csv."""
    plot_spectra(spectra, labels, out / "spectrum.png", title)
    files = [out / "condition.json", out / "spectrum.png"]
    if len(spectra) == 1:
        doc = spectra[0].summary()
    else:
        table = compare_table(spectra, labels)
        doc = {"rows": [{"removed": lab, **s.summary()} for lab, s in zip(labels, spectra)], "table": table}
        with open(out / "compare.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
        files.append(out / "compare.csv")
    (out / "condition.json").write_text(json.dumps(doc, indent=2) + "\n")
    return files


def run(config: ConditionRun, memo=None, executor=None, progress: Optional[Callable] = None, on_wait=None,
        queue_limit: Optional[int] = None) -> Report:
    """Estimate each spectrum through ``memo`` (one batch per tap size, queued per device) and write the files;
    ``executor`` is taken for the common shape: spectra run here."""
    from ..models.pool import load_model

    labels, cfgs = spectrum_configs(config)
    base = cfgs[0].recon
    image = model_image(config.image, base.model.input_size, base.resize)
    load_model(base.model, base.device, progress=progress is not None)  # weights and memory: one sentence first
    out = Path(config.out) if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    found = run_condition(image, cfgs, memo, progress=progress, on_wait=on_wait, queue_limit=queue_limit)
    took = time.perf_counter() - t0
    labels, spectra = [lab for lab, s in zip(labels, found) if s is not None], [s for s in found if s is not None]
    if not spectra:  # stopped before the first batch finished
        return Report("condition", "stopped", ["Stopped before any spectrum finished."])
    at = f" at {Path(config.image).stem}" if isinstance(config.image, str) else ""
    title = f"{base.model.label()}, {base.tap}: Jacobian{at}"
    verdicts = [reading(spectra, labels)] if len(spectra) > 1 else []
    lines = table_lines(spectra, labels) + [shape_line(spectra, took), NOTE] + verdicts
    files = []
    if out is not None:
        files = write_spectra(spectra, labels, out, title)
        lines.append(f"wrote {out}/{', '.join(f.name for f in files)}")
    return Report("condition", title, lines, compare_table(spectra, labels),
                  {"spectra": spectra_series(spectra, labels)}, files, spectra, verdicts)
