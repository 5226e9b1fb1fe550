"""``python -m vitrep filters``: the stem filter grid, untrained beside the chosen weights."""

from __future__ import annotations

from .common import add_io_args, add_model_args, make_ref_from_args


def add(sub) -> None:
    fi = sub.add_parser("filters", help="write the stem filter grid, untrained beside the chosen weights")
    add_io_args(fi, image=False)
    add_model_args(fi)
    fi.add_argument("--scale", type=int, default=2, help="enlarge each filter tile this many times")


def command(a) -> int:
    from ..experiments.filters import FiltersConfig, run

    config = FiltersConfig(make_ref_from_args(a, swaps=False), a.scale, a.device or "auto", a.out or "out/filters")
    print(run(config).text())
    return 0
