"""``python -m vitrep reconstruct``: reconstruct an image from one layer's output."""

from __future__ import annotations

from .common import Bar, add_io_args, add_model_args, add_run_args, config_from_args, image_path, open_memo


def add(sub) -> None:
    r = sub.add_parser("reconstruct", help="reconstruct an image from one layer's output")
    r.add_argument("--config", default=None, help="a config or result.json to rerun; flags given override it")
    add_io_args(r)
    add_model_args(r)
    add_run_args(r)


def command(a) -> int:
    from ..experiments.reconstruct import ReconstructRun, run
    from ..models.taps import describe_tap

    cfg = config_from_args(a)
    image = image_path(a.image)
    bar = Bar(cfg.steps, a.quiet, f"{cfg.model.name} {describe_tap(cfg.tap)}")
    try:
        report = run(ReconstructRun(cfg, image, a.out or "out"), open_memo(a), progress=None if a.quiet else bar)
    finally:
        bar.close()
    print(report.text())
    return 0
