"""``python -m vitrep ensemble``: reconstruct one image from one layer from many starts at once."""

from __future__ import annotations

from .common import Bar, add_io_args, add_model_args, add_run_args, config_from_args, image_path, open_memo


def add(sub) -> None:
    e = sub.add_parser("ensemble", help="many inputs, one output: reconstruct from N starts at once and show what "
                                        "the layer leaves undetermined")
    e.add_argument("--seeds", type=int, default=8, help="how many starts (seeds seed..seed+N-1; default 8)")
    add_io_args(e)
    add_model_args(e)
    add_run_args(e)


def command(a) -> int:
    from ..experiments.ensemble import EnsembleRun, run
    from ..models.taps import describe_tap

    cfg = config_from_args(a)
    bar = Bar(cfg.steps, a.quiet, f"{a.seeds} x {cfg.model.name} {describe_tap(cfg.tap)}")
    try:
        report = run(EnsembleRun(cfg, a.seeds, image_path(a.image), a.out or "out"), open_memo(a),
                     progress=None if a.quiet else bar)
    finally:
        bar.close()
    print(report.text())
    return 0
