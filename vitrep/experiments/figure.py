"""A figure of the write-up as an experiment: :class:`FigureConfig`, :func:`run`, a :class:`~.Report`.

:func:`plan_lines` says what a run will do before it runs (step counts,
left-out panels, optimizer, expected time) and :func:`result_lines` how it
went; the command line prints both, and a page can show the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from . import Report


@dataclass(frozen=True)
class FigureConfig:
    """One figure run: the figure (number or preset name), budget, optimizer(s), images and output folder."""

    figure: str  # a figure number ("2") or preset name ("layer-depth")
    budget: str = "demo"  # quick | demo | full
    optimizer: str = "gd"  # gd (the write-up's method) | adam | both
    steps: Optional[int] = None  # every panel this many steps (overrides the budget's)
    images: tuple[str, ...] = ()  # the user's images, in the figure's order (default: its bundled ones)
    weights: Optional[str] = None  # a checkpoint file standing in for trained weights
    device: str = "auto"
    out: str = ""  # default: out/<preset name>


def run(config: FigureConfig, memo=None, executor=None, progress: Optional[Callable] = None,
        say: Optional[Callable[[str], None]] = None) -> Report:
    """Run the figure's panels (through ``memo``) and judge its claims; the report's lines are the verdicts."""
    from ..figures import get_figure, run_figure

    fig = get_figure(config.figure)
    out = Path(config.out or f"out/{fig.name}")
    summary = run_figure(fig, out, config.budget, config.weights, memo, config.device, say=say, progress=progress,
                         images=list(config.images) or None, optimizer=config.optimizer, steps=config.steps,
                         executor=executor)
    lines = ([] if fig.claims else ["The write-up states no finding for this figure: its panels are shown without "
                                    "a verdict."])
    lines += [v["line"] for v in summary["verdicts"]] + list(summary["disagreements"])
    files = [out / "contact_sheet.png", out / "distances.json"] + [out / r["file"] for r in summary["panels"]]
    return Report("figure", f"Figure {fig.figure}: {fig.title}", lines, summary["panels"],
                  {"verdicts": summary["verdicts"]}, files, summary, [v["line"] for v in summary["verdicts"]])


WORDS = {  # what plan_lines says of the budget's choices, in the words of the interface the reader is in
    "cli": {"steps": "with --steps {}", "full": "run --budget full", "weights": "offline, pass --weights FILE"},
    "dashboard": {"steps": "at {} steps a panel", "full": "choose the full budget",
                  "weights": "offline, give a checkpoint file below"}}


def plan_lines(fig, budget: str = "demo", optimizers: Union[str, Sequence[str]] = "gd", steps: Optional[int] = None,
               *, weights: Optional[str] = None, on_ray: bool = False, costs: Optional[dict] = None,
               interface: str = "cli") -> list[str]:
    """What a run of ``fig`` (a :class:`vitrep.figures.Figure`, its number or preset name) will do, before it
    runs: the budget's step counts, the panels it leaves out, the optimizer(s) (``gd``, ``adam``, ``both`` or a
    list), the expected time (from this machine's own recent runs where ``costs`` has them, else the 2-core
    reference CPU's; not said ``on_ray``), and a note where trained weights are needed and no ``weights`` file
    is given; ``interface`` (``cli`` or ``dashboard``) words the choices as that reader makes them."""
    from ..figures import get_figure, optimizers_of
    from ..figures.verdicts import METHODS

    say = WORDS[interface]
    fig = get_figure(fig) if isinstance(fig, (str, int)) else fig
    opts = optimizers_of(optimizers) if isinstance(optimizers, str) else list(optimizers)
    lines = []
    counts = sorted({(p.steps, fig.steps_for(p, budget, steps)) for p in fig.panels_for(budget) if p.kind != "filters"})
    if counts and (budget != "full" or steps):
        lines.append(f"{budget} budget{' ' + say['steps'].format(steps) if steps else ''}: step counts "
                     f"{', '.join(f'{s:,} -> {b:,}' for s, b in counts)}"
                     + ("; a pipeline check, not the write-up's figure" if budget == "quick" else ""))
    left = fig.left_out(budget)
    if left:
        lines.append(f"left out of the {budget} budget (too costly on a CPU; {say['full']}): "
                     + ", ".join(p.label for p in left))
    if budget != "full" and fig.demo_note:
        lines.append(fig.demo_note)
    lines.append(f"optimizer: {' and '.join(METHODS[o] for o in opts)}"
                 + (" (the write-up's method)" if opts == ["gd"] else ""))
    expected = fig.expected_seconds(budget, len(opts), steps, costs)
    if expected and not on_ray:
        here = any(p.model in (costs or {}) for p in fig.panels_for(budget))
        when = f"{expected / 60:.1f} min" if expected > 90 else f"{expected:.0f} s"
        lines.append(f"expected: about {when} {'on this machine, from its own recent runs' if here else 'on a 2-core CPU'}")
    if fig.needs_trained and not weights:
        lines.append(f"note: {fig.name} needs trained weights ({', '.join(fig.models)}); {say['weights']}")
    return lines


def result_lines(report: Report, seconds: float) -> list[str]:
    """How a figure run went, before its verdicts: reconstructions and m_g < m_r per optimizer, the panels and
    the time, the variant run (a user's image, a weights file)."""
    from ..figures.verdicts import METHODS

    summary = report.data
    lines = []
    for opt in summary["optimizers"]:
        mine = [r for r in summary["panels"] if r.get("optimizer") == opt and "success" in r]
        ok = sum(1 for r in mine if r["success"])
        lines.append(f"figure {summary['figure']} ({summary['preset']}), {summary['budget']} budget, {METHODS[opt]}: "
                     f"{len(mine)} reconstructions" + (f", {ok}/{len(mine)} reach m_g < m_r" if mine else ""))
    lines.append(f"{len(summary['panels'])} panels in {seconds:.1f} s")
    if summary["variant"]:
        lines.append(summary["variant"])
    return lines
