"""Run a figure: its panels through the memo under one or both optimizers, its rows, verdicts and sheet.

:func:`run_figure` runs the reconstruction panels as one grid (plain GD, the
paper's method, by default; Adam; or both), class images and filter grids
after them, then writes one PNG per panel, ``contact_sheet.png`` and
``distances.json`` (the panels' rows, one verdict per claim and optimizer,
and a sentence where the optimizers disagree).  The rows hold what the
checks read: final, start and baseline distances, and whether the panel
moved (:func:`vitrep.figures.verdicts.moved`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..running.memo import Memo
from ..errors import ConfigError, WeightsUnavailable
from ..filters import filter_grid
from ..generate import run_generate
from ..running.grid import run_grid
from ..images import SAMPLES, to_pil
from ..models.pool import load_model
from ..models.registry import make_ref
from ..result import Progress, Result
from ..sheets import contact_sheet
from ..models.taps import tap_path
from .catalogue import Figure, Panel, check_budget
from .costs import record as record_costs
from .panels import (OPTIMIZER_CHOICES, _shown, figure_cells, figure_panels, image_map,  # noqa: F401 (handed on)
                     optimizers_of, panel_config, panel_ref, trained_missing, untrained_half)
from .rows import high_frequency, neighbour_correlations, reconstruction_row  # noqa: F401 (handed on)
from .verdicts import CLEARLY, METHODS, NOT_CHECKED, Verdict, disagreements, judge_claim

JUDGE_MODEL = "resnet50"  # figure 1's second opinion: a trained model that did not make the images


class _Judge:
    """Figure 1's second opinion: the top 5 of a trained model that did not make the image (loaded once)."""

    def __init__(self, device: str) -> None:
        self.device, self.lm, self.missing = device, None, ""

    def __call__(self, image: np.ndarray) -> dict:
        import torch
        import torch.nn.functional as F

        from ..images import to_tensor
        from ..models.weights import imagenet_classes

        if self.lm is None and not self.missing:
            try:
                self.lm = load_model(make_ref(JUDGE_MODEL, "trained"), self.device)
            except WeightsUnavailable as e:
                self.missing = str(e)
        if self.lm is None:
            return {"model": JUDGE_MODEL, "missing": self.missing}
        x = to_tensor(to_pil(image)).unsqueeze(0).to(self.lm.device)
        x = F.interpolate(x, size=(self.lm.size, self.lm.size), mode="bilinear", align_corners=False)
        with torch.no_grad():
            for op in tap_path(self.lm, "logits", normalize=True):
                x = op.fn(x)
        top = torch.topk(x[0], 5)
        names = imagenet_classes()
        return {"model": JUDGE_MODEL, "top5": [(int(i), names[int(i)], float(v)) for v, i in zip(top.values, top.indices)]}


# --- verdicts --------------------------------------------------------------------------------------------

def _methods(claim, kinds: dict, opts: list[str]) -> list[str]:
    """The optimizers a claim is judged under: the run's, or once where its panels involve no choice of one."""
    own = {kinds[label] for label in claim.reads if label in kinds}
    if not claim.descent or own == {"filters"}:
        return ["none"]
    if own == {"generate"}:
        return ["ngd"]  # class images always take normalised gradient steps
    return opts


def verdicts_of(fig: Figure, rows: dict[str, dict], opts: list[str], left_out: Sequence[str] = (),
                budget: str = "", no_weights: Sequence[str] = ()) -> list[Verdict]:
    """One verdict per claim and optimizer; ``rows`` maps an optimizer (or ``none``/``ngd``) to ``{label: row}``
    (``no_weights``: the trained panels a run of the untrained half left out)."""
    kinds = {p.label: p.kind for p in fig.panels + tuple(fig.demo_panels)}
    full = {p.label: p.steps for p in fig.panels + tuple(fig.demo_panels) if p.kind == "reconstruct"}
    out = []
    for n, claim in enumerate(fig.claims, 1):
        for opt in _methods(claim, kinds, opts):
            out.append(judge_claim(fig.figure, n, claim, rows.get(opt, {}), opt, left_out, budget, full,
                                   no_weights))
    return out


# --- the run -------------------------------------------------------------------------------------------

def _caption(p: Panel, r, image: str = "", method: str = "") -> str:
    if isinstance(r, Result):
        start = r.curves["input_distance"][0] if r.curves["input_distance"] else float("inf")
        still_noise = r.final["input_distance"] / max(start, 1e-30) > 1 - CLEARLY  # see verdicts.loose_bar
        mark = (("< m_r (loose pass)" if still_noise else "< m_r (pass)") if r.success  # the sheet's subtitle says why
                else ">= m_r")
        back = f" back-offs {r.backoffs}" if r.backoffs else ""
        tag = f"[{method}] " if method else ""
        return (f"{tag}{p.label}{' (' + image + ')' if image else ''}\n"
                f"m_g {r.final['embedding_distance']:.3g} {mark} {r.baseline['embedding_distance']:.3g}"
                f"\n|a-a_g| {r.final['input_distance']:.3g} SSIM {r.final['ssim']:.2f}"
                f"{' ' + r.status if r.status != 'done' else ''}{back}")
    if hasattr(r, "top5"):
        return f"{p.label}\nlogit {r.curves['target_logit'][-1]:.3g}, next {r.curves['best_other_logit'][-1]:.3g}"
    return p.label


def _image_label(source: str) -> str:
    return source if source in SAMPLES else Path(source).stem


def _file_name(i: int, p: Panel, image: str, opt: str, several: bool, both: bool) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in p.label)
    return f"{i + 1:02d}_{stem}{'_' + image if several else ''}{'_' + opt if both else ''}.png"


BUDGET_NOTES = {"quick": "step counts cut to a handful: a pipeline check, not the paper's figure",
                "demo": "the demo budget: the smallest at which the claims can be judged on a CPU",
                "full": "the paper's step counts"}


@dataclass
class _Run:
    """What one run of a figure shows: its panels at the budget (the variant's, where one runs), the images
    under the names shown, the optimizers, and where the files go."""

    fig: Figure
    budget: str
    opts: list[str]
    panels: list[Panel]
    shown: dict[str, str]
    variant: str
    out: Path
    steps: Optional[int]
    untrained_only: bool = False
    precision: str = "fp32"

    @property
    def recon(self) -> list[Panel]:
        return [p for p in self.panels if p.kind == "reconstruct"]

    @property
    def cols(self) -> int:
        return self.fig.cols + (1 if self.recon else 0)

    def order(self) -> list[tuple[Panel, str]]:
        """Every panel with the method it runs under: the reconstructions once per optimizer, then the rest."""
        return [(p, o) for o in self.opts for p in self.recon] + [(p, "ngd" if p.kind == "generate" else "none")
                                                                 for p in self.panels if p.kind != "reconstruct"]


def _compute(run: _Run, weights_file, memo, device, say, progress, images, optimizer, on_wait, queue_limit,
             executor) -> tuple[dict, bool]:
    """Every panel's result, ``{(label, method): result}``, and whether the run was stopped."""
    results: dict[tuple[str, str], object] = {}
    fig, budget = run.fig, run.budget
    if run.recon:
        say(f"reconstructing {len(run.recon)} panel(s) under {' and '.join(METHODS[o] for o in run.opts)}")
        cells = figure_cells(fig, budget, weights_file, device, optimizer, images, steps=run.steps,
                             untrained_only=run.untrained_only, precision=run.precision)
        grid = run_grid(cells, memo, progress=progress, on_wait=on_wait, queue_limit=queue_limit, executor=executor)
        for c, r in zip(grid.cells, grid.results):
            if r is not None:
                results[(c.labels["panel"], c.labels["optimizer"])] = r
    stopped = len(results) < len(run.recon) * len(run.opts) or any(
        isinstance(r, Result) and r.status == "stopped" for r in results.values())
    for p in [] if stopped else run.panels:
        if p.kind == "generate":
            say(f"class image: {p.cls}")
            cfg = panel_config(p, fig.steps_for(p, budget, run.steps), weights_file, device)
            results[(p.label, "ngd")] = run_generate(cfg, memo, on_wait=on_wait, queue_limit=queue_limit)
        elif p.kind == "filters":
            say(f"filters: {p.label}")
            results[(p.label, "none")] = filter_grid(load_model(panel_ref(p, weights_file), device))
    return results, stopped


def _panel_row(p: Panel, r, method: str, fname: str, image: str, judge: "_Judge") -> dict:
    """A panel's entry of ``distances.json``: what the checks read."""
    row = {"label": p.label, "kind": p.kind, "file": fname, "model": p.model, "weights": p.weights,
           "optimizer": method}
    if isinstance(r, Result):
        row.update(image=image, **reconstruction_row(r))
    elif p.kind == "generate":
        row.update(status=r.status, steps=r.steps, class_index=r.config.class_index, top5=r.top5,
                   target_logit=r.curves["target_logit"][-1], best_other_logit=r.curves["best_other_logit"][-1],
                   judge=judge(r.image))
    else:
        corr = neighbour_correlations(r.tiles)
        row.update(filters=r.count, filter_size=list(r.tiles.shape[1:3]), neighbour_correlation=float(corr.mean()),
                   correlations=[round(float(c), 4) for c in corr])
    return row


def _layout(run: _Run, results: dict, judge: "_Judge") -> tuple[list, list, dict]:
    """Write each panel's PNG; the sheet's tiles, the rows, and the rows by method (``{method: {label: row}}``)."""
    several, both = len(run.shown) > 1, len(run.opts) > 1
    tiles, rows, by_method = [], [], {}
    for name in dict.fromkeys(p.image for p in run.recon):
        r = next((results[(p.label, o)] for o in run.opts for p in run.recon
                  if p.image == name and (p.label, o) in results), None)
        if r is not None:
            tiles.append((r.target, f"target: {run.shown[name]}"))
    for i, (p, method) in enumerate([(p, m) for p, m in run.order() if (p.label, m) in results]):
        r = results[(p.label, method)]
        if both and p.kind == "reconstruct" and method == run.opts[1] and p is run.recon[0]:
            while len(tiles) % run.cols:  # the second optimizer's panels start a row of their own
                tiles.append((np.full_like(r.target, 255), ""))
        img = r.image if p.kind != "filters" else r.image(scale=1)
        image = run.shown.get(p.image, "") if p.kind == "reconstruct" else ""
        fname = _file_name(i, p, image, method, several and p.kind == "reconstruct", both and p.kind == "reconstruct")
        to_pil(img).save(run.out / fname)
        tiles.append((img, _caption(p, r, image if several else "", METHODS[method] if both else "")))
        rows.append(_panel_row(p, r, method, fname, image, judge))
        by_method.setdefault(method, {})[p.label] = rows[-1]
    for method in run.opts:  # class images and filters are read by every optimizer's claims
        by_method.setdefault(method, {}).update({k: v for m in ("ngd", "none") for k, v in by_method.get(m, {}).items()})
    return tiles, rows, by_method


def _sheet(run: _Run, tiles: list, verdicts: list, disagree: list[str]) -> None:
    label = {"quick": " (QUICK: a pipeline check, not the figure)", "demo": " (demo budget)", "full": ""}[run.budget]
    steps = run.steps
    title = f"Figure {run.fig.figure}: {run.fig.title}{label}" + (
        f", {steps:,} step{'s' if steps > 1 else ''} a panel" if steps else "")
    lines = [v.short() for v in verdicts] + disagree
    if not run.fig.claims:
        lines = ["The paper states no finding for this figure: its panels are shown without a verdict."]
    contact_sheet(tiles, title, cols=run.cols, subtitle=([run.variant] if run.variant else []) + lines).save(
        run.out / "contact_sheet.png")


def run_figure(fig: Figure, out: Path, budget: str = "demo", weights_file: Optional[str] = None,
               memo: Optional[Memo] = None, device: str = "auto", say: Optional[Callable[[str], None]] = None,
               progress: Optional[Callable[[Progress], Optional[bool]]] = None,
               images: Optional[Sequence[str]] = None, optimizer: str = "gd", steps: Optional[int] = None,
               on_wait=None, queue_limit: Optional[int] = None, executor=None, untrained_only: bool = False,
               precision: str = "fp32") -> dict:
    """Run the figure's panels at ``budget``; write each panel's PNG, ``contact_sheet.png`` and ``distances.json``.

    ``optimizer``: ``gd`` (the paper's plain gradient descent, the default),
    ``adam`` or ``both`` (every reconstruction under each; one verdict per
    claim and optimizer).  ``steps`` overrides every panel's step count.
    ``say(message)`` narrates; ``progress(Progress)`` sees every report step
    and may return True to stop (the summary then says ``"stopped": true``
    and no claim is judged).  ``executor`` (e.g.
    :class:`vitrep.running.distributed.RayExecutor`) runs the reconstructions
    elsewhere.  ``untrained_only`` runs the figure's untrained half, leaving
    out the panels that need trained weights (their claims are NOT CHECKED,
    saying so).  ``precision``: every reconstruction's (:mod:`vitrep.precision`;
    benchmarks/gpu_precision.py runs figure 2 under fp32 and tf32).  Returns
    the summary written to ``distances.json``.
    """
    check_budget(budget)
    opts = optimizers_of(optimizer)
    if steps is not None and steps < 1:
        raise ConfigError(f"Steps must be at least 1, not {steps}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mapping = image_map(fig, images)
    variant_panels, variant = figure_panels(fig, budget, weights_file, untrained_only)
    panels = _shown(variant_panels, mapping)
    if weights_file and fig.needs_trained:
        variant = (variant + "; " if variant else "") + "trained weights stood in by the checkpoint file " \
            + Path(weights_file).name
    run = _Run(fig, budget, opts, panels, {p.image: _image_label(mapping[p.image]) for p in panels
                                           if p.kind == "reconstruct"}, variant, out, steps, untrained_only, precision)
    results, stopped = _compute(run, weights_file, memo, device, say or (lambda msg: None), progress, images,
                                optimizer, on_wait, queue_limit, executor)
    if memo is not None and not stopped:  # this machine's own costs, for the next expected time
        record_costs(memo.directory, [(p, results[(p.label, o)]) for o in opts for p in run.recon
                                      if isinstance(results.get((p.label, o)), Result)])
    tiles, rows, by_method = _layout(run, results, _Judge(device))
    left = [p.label for p in fig.left_out(budget)]
    no_weights = untrained_half(fig.panels_for(budget)) if untrained_only else []
    verdicts = [] if stopped else verdicts_of(fig, by_method, opts, left, budget, no_weights)
    disagree = disagreements(verdicts)
    _sheet(run, tiles, verdicts, disagree)
    summary = {"preset": fig.name, "figure": fig.figure, "title": fig.title, "budget": budget, "steps": steps,
               "quick": budget == "quick", "stopped": stopped, "optimizers": opts, "note": BUDGET_NOTES[budget],
               "variant": variant, "left_out": left, "untrained_only": untrained_only, "images": dict(run.shown),
               "weights_file": weights_file,
               "claims": len(fig.claims), "verdicts": [v.to_dict() for v in verdicts], "disagreements": disagree,
               "panels": rows}
    (out / "distances.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def verdict_counts(summary: dict) -> dict[str, int]:
    """How many verdicts of each kind a run gave."""
    counts = {"HELD": 0, "NOT HELD": 0, NOT_CHECKED: 0}
    for v in summary.get("verdicts", []):
        counts[v["verdict"]] += 1
    return counts
