"""The one-call API, in the manner of lucent's ``render_vis`` and torchvision's builders.

    import vitrep
    r = vitrep.reconstruct("cat", model="vit_b_32", layer=8, remove="attention", steps=300)
    print(r.final, r.success)
    report = vitrep.figure(2, budget="demo")
    print(report.text())

Both go through the disk memo (``cache_dir``; ``None`` for the default,
``False`` for none), so a repeat is instant.
"""

from __future__ import annotations

from typing import Callable, Optional

from .experiments import Report
from .result import Result


def _memo(cache_dir):
    from .running.memo import get_memo

    return None if cache_dir is False else get_memo(cache_dir)


def reconstruct(image="cat", model="vit_b_32", layer=1, *, weights: str = "untrained", remove=None, blocks=None,
                swaps=None, cache_dir=None, progress: Optional[Callable] = None, **options) -> Result:
    """Reconstruct ``image`` (a file, a bundled sample name, a PIL image or a ``(3, H, W)`` tensor) from
    ``layer`` of ``model``; ``options`` are any :class:`vitrep.config.ReconstructConfig` fields
    (``steps``, ``optimizer``, ``lr_start``, ``pos_embed`` ...).  Returns the :class:`~vitrep.result.Result`."""
    from .config import make_config
    from .images import image_source, prepare
    from .running.runs import prepare_job

    cfg = make_config(model, layer, weights=weights, remove=remove or (), blocks=blocks,
                      **({"swaps": swaps} if swaps else {}), **options)
    src = image_source(image) if isinstance(image, str) else image
    job = prepare_job(prepare(src, cfg.model.input_size, cfg.resize), cfg)
    memo = _memo(cache_dir)
    return job.cached(memo) or job.run(memo, progress=progress)


def figure(number, budget: str = "demo", optimizer: str = "gd", *, steps: Optional[int] = None, images=(),
           out: str = "", cache_dir=None, progress: Optional[Callable] = None) -> Report:
    """Run figure ``number`` of the write-up (or a preset name) and judge its claims; returns the
    :class:`~vitrep.experiments.Report` (``report.lines`` are the verdicts, ``report.rows`` the panels)."""
    from .experiments.figure import FigureConfig, run

    cfg = FigureConfig(str(number), budget, optimizer, steps, tuple(images), out=out)
    return run(cfg, _memo(cache_dir), progress=progress)


def ensemble(image="cat", model="vit_b_32", layer=1, *, seeds: int = 8, weights: str = "untrained", remove=None,
             blocks=None, swaps=None, out: str = "", cache_dir=None, progress: Optional[Callable] = None,
             **options) -> Report:
    """Reconstruct ``image`` from ``layer`` from ``seeds`` starts at once (:mod:`vitrep.ensembles`); the
    :class:`~vitrep.experiments.Report`'s ``data`` is the :class:`~vitrep.ensembles.Ensemble` (members, mean,
    spread, the share of pixels left undetermined)."""
    from .config import make_config
    from .experiments.ensemble import EnsembleRun, run

    cfg = make_config(model, layer, weights=weights, remove=remove or (), blocks=blocks,
                      **({"swaps": swaps} if swaps else {}), **options)
    return run(EnsembleRun(cfg, seeds, image, out), _memo(cache_dir), progress=progress)


def visualise(model="vit_b_32", layer=1, kind: str = "channel", units="0-7", *, objectives=None, image=None,
              top: Optional[int] = None, weights: str = "untrained", remove=None, blocks=None, out: str = "",
              cache_dir=None, progress: Optional[Callable] = None, **options) -> Report:
    """What units of ``model`` respond to (:mod:`vitrep.units`): ``kind`` units (channel, neuron, mlp, head,
    direction) at ``layer`` (a block number for mlp and head), or ``objectives`` of your own (texts or
    :class:`~vitrep.units.Objective` s, composed with ``+`` and ``*``); with ``image`` and ``top``, its ``top``
    most active units.  ``options`` are :class:`~vitrep.units.UnitsConfig` fields (``steps``, ``param``,
    ``jitter`` ...).  The :class:`~vitrep.experiments.Report`'s ``data`` is the :class:`~vitrep.units.Units`."""
    from .experiments.units import UnitsRun, objectives_for, run
    from .units import make_units_config, unit_range

    if objectives is None:
        objectives = objectives_for(kind, layer, unit_range(units))
    cfg = make_units_config(model, objectives, weights=weights, remove=remove or (), blocks=blocks, **options)
    return run(UnitsRun(cfg, image, (kind, str(layer), top) if top else None, out), _memo(cache_dir),
               progress=progress)
