"""One reconstruction as an experiment: :class:`ReconstructRun`, :func:`run`, a :class:`~.Report`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import ReconstructConfig
from ..result import Result
from . import Report
from .inputs import model_image

FILES = ("target.png", "reconstruction.png", "curves.csv", "result.json")


@dataclass(frozen=True)
class ReconstructRun:
    """A reconstruction config, the image it starts from and the folder its files go to ("": none)."""

    config: ReconstructConfig
    image: Any = "cat"  # a file or sample name, a PIL image or a prepared (1, 3, H, W) tensor
    out: str = ""


def write_result(result: Result, out: Path) -> list[Path]:
    """target.png, reconstruction.png, curves.csv and result.json (the documented summary) in ``out``."""
    from ..images import to_pil

    out.mkdir(parents=True, exist_ok=True)
    to_pil(result.target).save(out / "target.png")
    to_pil(result.image).save(out / "reconstruction.png")
    (out / "curves.csv").write_text(result.curves_csv())
    (out / "result.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    return [out / f for f in FILES]


def result_line(result: Result) -> str:
    """The one line that says how a reconstruction went, its verdict (m_g against m_r) among the numbers."""
    f, b = result.final, result.baseline
    verdict = "success: m_g < m_r" if result.success else "not yet: m_g >= m_r"
    return (f"{result.status}: {result.steps} steps, {result.steps_per_second:.1f} steps/s on {result.device}"
            f"{' in bf16' if result.config.precision == 'bf16' else ''}; "
            f"embedding distance {f['embedding_distance']:.4g} vs baseline {b['embedding_distance']:.4g} ({verdict}); "
            f"input distance {f['input_distance']:.4g}, PSNR {f['psnr']:.2f} dB, SSIM {f['ssim']:.3f}")


def run(config: ReconstructRun, memo=None, executor=None, progress: Optional[Callable] = None) -> Report:
    """Reconstruct through ``memo`` (a hit is read without loading the model; with ``progress`` a download shows
    its progress too) and write the files into ``config.out``.  ``executor`` is taken for the common shape:
    one reconstruction runs here."""
    from ..models.pool import load_model
    from ..models.taps import describe_tap
    from ..running.runs import prepare_job

    cfg = config.config
    job = prepare_job(model_image(config.image, cfg.model.input_size, cfg.resize), cfg)
    t0 = time.perf_counter()
    result = job.cached(memo)
    if result is None:
        load_model(cfg.model, cfg.device, progress=progress is not None)  # weights problems before any step
        result = job.run(memo, progress=progress)
    took = time.perf_counter() - t0
    lines = [f"memo hit: result read from the disk memo in {took:.2f} s (computed earlier in {result.seconds:.1f} s)"
             ] if result.from_cache else []
    lines.append(result_line(result))
    files = []
    if config.out:
        out = Path(config.out)
        files = write_result(result, out)
        lines.append(f"wrote {out}/{', '.join(FILES)}")
    return Report("reconstruct", f"{cfg.model.label()}, {describe_tap(cfg.tap)}", lines,
                  [{**result.final, "baseline_embedding_distance": result.baseline["embedding_distance"],
                    "success": result.success}], {"curves": result.curves}, files, result)
