"""``python -m vitrep preset``: run one of the write-up's figures (or all of them) and judge its claims."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError
from .common import Bar, add_io_args, add_ray_args, executor, open_memo


def add(sub) -> None:
    pr = sub.add_parser("preset", help="run one of the paper's figures and judge its claims (see --list)")
    pr.add_argument("name", nargs="?", help="preset name or figure number")
    pr.add_argument("--list", action="store_true", help="list the presets with their figure in the write-up")
    pr.add_argument("--budget", choices=("quick", "demo", "full"), default=None,
                    help="quick: a pipeline check in seconds; demo (default): the smallest budget at which the "
                         "figure's claims can be judged on a CPU; full: the paper's step counts, for a GPU")
    pr.add_argument("--quick", action="store_true", help="the same as --budget quick")
    pr.add_argument("--image", action="append", default=None,
                    help="run the figure on your own image (a file or sample name) instead of the bundled one; "
                         "repeat for figures with two images")
    pr.add_argument("--optimizer", choices=("gd", "adam", "both"), default="gd",
                    help="gd (default): the paper's plain gradient descent, calibrated step sizes; adam: fast, "
                         "but it rescales each pixel's step and can hide poor conditioning; both: every panel "
                         "under each, one verdict per optimizer, side by side")
    pr.add_argument("--steps", type=int, default=None, metavar="K",
                    help="run every panel K steps (overrides the budget's step counts)")
    pr.add_argument("--weights", default=None, help="a checkpoint FILE to use wherever the preset needs trained weights")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--all", action="store_true",
                    help="every figure that needs no trained weights (all of them with --weights FILE), "
                         "each into OUT/<preset name>/")
    add_io_args(pr, image=False)
    add_ray_args(pr)


def command(a) -> int:
    from ..figures import get_figure, optimizers_of

    if a.all:
        if a.name or a.list:
            raise ConfigError("--all runs every figure; give no preset name with it.")
        return _all(a)
    if a.list or not a.name:
        return _list()
    fig = get_figure(a.name)
    optimizers_of(a.optimizer)  # a bad choice is one sentence before anything runs
    budget = _budget(a)
    ex = executor(a)
    memo = open_memo(a)
    with ex as workers:
        _one(a, fig, budget, Path(a.out or f"out/{fig.name}"), memo, workers)
    return 0


def _list() -> int:
    from ..figures import FIGURES

    print(f"{'figure':>6}  {'preset':<34}{'trained?':<10}{'claims':<8}{'demo here':<11}title")
    for f in sorted(FIGURES.values(), key=lambda f: f.figure):
        t = f.expected_seconds("demo")
        print(f"{f.figure:>6}  {f.name:<34}{'yes' if f.needs_trained else 'no':<10}{len(f.claims):<8}"
              f"{'~%.0f s' % t:<11}{f.title}")
    print("\nThe default optimizer is gd, the paper's plain gradient descent; --optimizer both adds Adam beside it.")
    return 0


def _budget(a) -> str:
    if a.quick and a.budget not in (None, "quick"):
        raise ConfigError("--quick is the same as --budget quick; give one or the other.")
    if a.steps is not None and a.steps < 1:
        raise ConfigError(f"--steps must be at least 1, not {a.steps}.")
    return "quick" if a.quick else (a.budget or "demo")


def _one(a, fig, budget: str, out: Path, memo, workers, brief: bool = False) -> dict:
    """Run one figure and print what the command line prints for it (``brief``: the result lines only)."""
    from ..experiments.figure import FigureConfig, plan_lines, result_lines, run

    if not brief:
        from ..figures.costs import measured

        costs = measured(memo.directory) if memo is not None else None
        print("\n".join(plan_lines(fig, budget, a.optimizer, a.steps, weights=a.weights, on_ray=workers is not None,
                                    costs=costs)))
    t0 = time.perf_counter()
    bar = Bar(1, a.quiet, f"figure {fig.figure}")

    def on_step(p):
        if workers is not None:
            return bar.cluster(p)
        bar.to(p.step, total=p.total, label=f"figure {fig.figure} batch {p.batch + 1}")

    config = FigureConfig(fig.name, budget, a.optimizer, a.steps, tuple(a.image or ()), a.weights, a.device, str(out))
    try:
        report = run(config, memo, workers, on_step,
                     say=None if a.quiet else (lambda m: print(f"  {m}", file=sys.stderr)))
    finally:
        bar.close()
    print("\n".join(result_lines(report, time.perf_counter() - t0) + report.lines))
    print(f"wrote {out}/contact_sheet.png, distances.json and one PNG per panel")
    return report.data


def _all(a) -> int:
    """``preset --all``: every figure that needs no trained weights (all with ``--weights``), each into OUT/NAME/.

    With ``--ray`` every figure's reconstructions first go to the cluster as
    one call (so the workers share all of them out), then each figure is
    written from the memo.
    """
    from ..figures import FIGURES, optimizers_of, verdict_counts

    budget = _budget(a)
    optimizers_of(a.optimizer)
    figs = [f for f in sorted(FIGURES.values(), key=lambda f: f.figure) if a.weights or not f.needs_trained]
    skipped = [f for f in FIGURES.values() if f not in figs]
    root = Path(a.out or "out")
    ex = executor(a)
    memo = open_memo(a)
    print(f"{len(figs)} figures ({', '.join(str(f.figure) for f in figs)}), {budget} budget"
          + (f"; left out (need trained weights; give --weights FILE): {', '.join(str(f.figure) for f in skipped)}"
             if skipped else ""))
    t0 = time.perf_counter()
    counts = {"HELD": 0, "NOT HELD": 0, "NOT CHECKED": 0}
    with ex as workers:
        if workers is not None and memo is not None:
            _all_on_ray(a, figs, budget, memo, workers)
        for fig in figs:
            for k, n in verdict_counts(_one(a, fig, budget, root / fig.name, memo, workers, brief=True)).items():
                counts[k] += n
    took = time.perf_counter() - t0
    print(f"all {len(figs)} figures in {took:.1f} s ({budget} budget{', on Ray' if a.ray else ''}); verdicts: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def _all_on_ray(a, figs, budget: str, memo, workers) -> None:
    """Every figure's reconstructions to the cluster as one call, into the memo the figures are then read from."""
    from ..figures import figure_cells
    from ..running.grid import run_grid

    loaded: dict = {}
    cells = [c for f in figs for c in figure_cells(f, budget, a.weights, a.device, a.optimizer, a.image or None,
                                                   loaded, a.steps)]
    print(f"{len(cells)} reconstructions on Ray", file=sys.stderr)
    bar = Bar(1, a.quiet, "all figures")
    try:
        run_grid(cells, memo, progress=bar.cluster, executor=workers)
    finally:
        bar.close()
