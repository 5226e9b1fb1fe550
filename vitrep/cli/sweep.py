"""``python -m vitrep sweep``: your own grid, layers x surgeries x images -> one contact sheet and one CSV."""

from __future__ import annotations

import sys

from .common import (Bar, add_io_args, add_model_args, add_ray_args, add_run_args, config_from_args, executor,
                     open_memo)


def add(sub) -> None:
    sw = sub.add_parser("sweep", help="your own grid: layers x surgeries x images -> one contact sheet and one CSV")
    sw.add_argument("--image", action="append", default=None, help="image file or sample name; repeat for several")
    sw.add_argument("--layers", default="all", help="e.g. 1-12, or 1,4,stem,only-encoder-3 (default: every layer)")
    sw.add_argument("--surgeries", default="none", help="removal sets separated by ';', e.g. 'none;attention;mlp,ln_2'")
    add_io_args(sw, image=False)
    add_model_args(sw)
    add_run_args(sw)
    add_ray_args(sw)


def command(a) -> int:
    from ..experiments.sweep import make_sweep_config, run

    base = config_from_args(a)  # validates every shared flag once
    ex = executor(a)
    config = make_sweep_config(base, a.layers, a.surgeries, a.image or ["cat"], a.blocks, a.optimizer, a.lr_start,
                               a.lr_end, a.out or "out/sweep")
    memo = open_memo(a)
    bar = Bar(base.steps, a.quiet, "sweep" if a.ray is None else "sweep (ray)")
    try:
        with ex as workers:
            progress = None if a.quiet else (bar if workers is None else bar.cluster)
            report = run(config, memo, workers, progress, say=lambda line: print(line, file=sys.stderr))
    finally:
        bar.close()
    print(report.text())
    return 0
