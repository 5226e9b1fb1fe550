"""Which panels a run of a figure shows, and the engine config of each: the budget's panels, a variant's, the
untrained half, the images mapped to the user's, the optimizers.

:func:`figure_cells` is the grid :func:`vitrep.figures.run.run_figure` computes (and the gallery's staleness
check compares), :func:`panel_config` one panel's config.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from ..config import make_config
from ..errors import ConfigError, WeightsUnavailable
from ..generate import make_generate_config
from ..images import image_source, prepare
from ..models.registry import make_ref
from ..models.weights import trained_file
from ..running.grid import Cell
from .catalogue import Figure, Panel, check_budget

OPTIMIZER_CHOICES = ("gd", "adam", "both")


def optimizers_of(choice: str) -> list[str]:
    """``gd`` (the paper's method, the default), ``adam`` or ``both`` -> the optimizers a figure runs."""
    choice = (choice or "gd").lower()
    if choice not in OPTIMIZER_CHOICES:
        raise ConfigError(f"Optimizer {choice!r} is not known for a figure; use gd (the paper's plain gradient "
                          f"descent), adam, or both.")
    return ["gd", "adam"] if choice == "both" else [choice]


def _weights(w: str, weights_file: Optional[str]) -> str:
    return weights_file if (w == "trained" and weights_file) else w


def panel_ref(p: Panel, weights_file: Optional[str] = None):
    return make_ref(p.model, _weights(p.weights, weights_file), swaps=p.swaps,
                    swap_from=_weights(p.swap_from, weights_file), **dict(p.arch))


def panel_config(p: Panel, steps: int, weights_file: Optional[str] = None, device: str = "auto",
                 optimizer: str = "gd", precision: str = "fp32"):
    """The engine config of a panel at ``steps`` (``None`` for filter panels)."""
    ref = panel_ref(p, weights_file)
    if p.kind == "generate":
        return make_generate_config(ref, p.cls, steps=steps, jitter_start=min(200, steps // 2),
                                    report_every=max(1, min(20, steps)), device=device)
    if p.kind == "filters":
        return None
    return make_config(ref, p.layer, remove=p.remove, blocks=p.blocks or None, steps=steps, pos_embed=p.pos_embed,
                       report_every=max(1, min(50, steps // 10 or 1)), device=device, optimizer=optimizer,
                       precision=precision, **dict(p.options))


def trained_missing(panels: Sequence[Panel]) -> str:
    """The sentence for the first trained weights file these panels need that cannot be had, else ''."""
    for name in dict.fromkeys(p.model for p in panels if p.needs_trained):
        try:
            trained_file(make_ref(name).spec)
        except WeightsUnavailable as e:
            return str(e)
    return ""


def figure_panels(fig: Figure, budget: str, weights_file: Optional[str] = None,
                  untrained_only: bool = False) -> tuple[list[Panel], str]:
    """The panels a run at ``budget`` shows, and a note when they are a variant of the paper's setup.

    A figure with ``untrained_variant`` whose trained weights cannot be had
    (and no checkpoint stands in) runs its panels untrained, and says so.
    ``untrained_only``: the figure's untrained half, its panels that need
    trained weights left out (figure 12 in the gallery of a machine without
    them; :func:`untrained_half`).
    """
    panels = fig.panels_for(budget)
    note = fig.demo_note if budget != "full" and fig.demo_panels else ""
    if untrained_only:
        dropped = untrained_half(panels)
        panels = [p for p in panels if p.label not in dropped]
        if not panels or not dropped:
            raise ConfigError(f"Figure {fig.figure} has no untrained half to run alone: "
                              f"{'every' if not panels else 'no'} panel of it needs trained weights.")
        note = ((note + "; ") if note else "") + (f"its untrained half: {', '.join(dropped)} "
                                                  f"need{'s' if len(dropped) == 1 else ''} trained weights")
    if fig.untrained_variant and not weights_file and any(p.needs_trained for p in panels):
        missing = trained_missing(panels)
        if missing:
            panels = [replace(p, swaps="") if p.swaps and p.swap_from == "trained" else p for p in panels]
            note = f"untrained variant (the trained stem is missing): {missing}"
    return panels, note


def untrained_half(panels: Sequence[Panel]) -> list[str]:
    """The labels of the panels a run of a figure's untrained half leaves out: those that need trained weights."""
    return [p.label for p in panels if p.needs_trained]


def image_map(fig: Figure, images: Optional[Sequence[str]]) -> dict[str, str]:
    """The figure's bundled image names, in order of first use, mapped to the user's images (or themselves)."""
    names = list(dict.fromkeys(p.image for p in fig.panels + tuple(fig.demo_panels) if p.kind == "reconstruct"))
    if not images:
        return {n: n for n in names}
    return {n: images[i] for i, n in enumerate(names) if i < len(images)}


def _shown(panels: Sequence[Panel], mapping: dict) -> list[Panel]:
    """Reconstructions only where their image is given."""
    return [p for p in panels if p.kind != "reconstruct" or p.image in mapping]


def figure_cells(fig: Figure, budget: str = "demo", weights_file: Optional[str] = None, device: str = "auto",
                 optimizer: str = "gd", images: Optional[Sequence[str]] = None, loaded: Optional[dict] = None,
                 steps: Optional[int] = None, untrained_only: bool = False, precision: str = "fp32") -> list[Cell]:
    """The grid of the figure's reconstruction panels at ``budget``, per optimizer in panel order
    (``loaded``: images read so far; ``steps`` overrides every panel's; ``untrained_only``: its untrained half;
    ``precision``: every panel's, :mod:`vitrep.precision`)."""
    check_budget(budget)
    mapping = image_map(fig, images)
    loaded = {} if loaded is None else loaded
    panels = [p for p in _shown(figure_panels(fig, budget, weights_file, untrained_only)[0], mapping)
              if p.kind == "reconstruct"]
    cells = []
    for opt in optimizers_of(optimizer):
        for p in panels:
            cfg = panel_config(p, fig.steps_for(p, budget, steps), weights_file, device, opt, precision)
            key = (mapping[p.image], cfg.model.input_size)
            if key not in loaded:
                loaded[key] = prepare(image_source(key[0]), key[1])
            cells.append(Cell(loaded[key], cfg, {"panel": p.label, "optimizer": opt}))
    return cells
