"""``python -m vitrep condition``: the Jacobian spectrum of one tap at an image (conditioning, measured)."""

from __future__ import annotations

import argparse

from .common import Bar, add_io_args, add_model_args, config_from_args, image_path, open_memo


def add(sub) -> None:
    co = sub.add_parser("condition", help="the Jacobian spectrum of one tap at an image: conditioning, measured")
    add_io_args(co)
    add_model_args(co)
    g = co.add_argument_group("tap")
    g.add_argument("--layer", default=None, help="a number (encoder/block/stage k) or a tap, as for reconstruct")
    g.add_argument("--remove", default=None, help="components to remove, e.g. attention or ln_1,ln_2")
    g.add_argument("--blocks", default=None, help="blocks the removal applies to, e.g. 1-4 (default all)")
    g.add_argument("--pos-embed", dest="pos_embed", action=argparse.BooleanOptionalAction, default=None,
                   help="add the positional embedding as the model does (default on)")
    e = co.add_argument_group("estimator")
    e.add_argument("--k", type=int, default=16, help="singular values at each end of the spectrum (default 16)")
    e.add_argument("--iterations", type=int, default=0,
                   help="Lanczos steps (default max(5k, 80)); more gives a truer bottom of the spectrum")
    e.add_argument("--probes", type=int, default=8, help="random probes for the Frobenius norm (default 8)")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the Lanczos start vector and of the starting noise a_0 the gain is measured from")
    e.add_argument("--compare", default=None, metavar="SETS",
                   help="removal sets separated by ';', e.g. 'none;attention;ln_1,ln_2;mlp': one spectrum each, "
                        "one table and one overlaid plot")


def command(a) -> int:
    from ..experiments.condition import ConditionRun, run, spectrum_configs
    from ..experiments.inputs import removal_sets

    base = config_from_args(argparse.Namespace(**{**vars(a), "config": None}))  # model, tap, surgery, seed
    config = ConditionRun(base, a.image, tuple(removal_sets(a.compare)) if a.compare else (), a.blocks, a.k,
                          a.iterations, a.probes, a.seed, a.out or "out/condition")
    steps = spectrum_configs(config)[1][0].lanczos_steps(10 ** 9)  # the removal sets and estimator checked
    image_path(a.image)
    bar = Bar(steps, a.quiet, f"{base.model.name} {base.tap} spectrum")

    def on_step(p):
        if p.rows:
            bar.to(p.step, sigma_max=f"{p.rows[0]['sigma_max']:.4g}")

    try:
        report = run(config, open_memo(a), progress=None if a.quiet else on_step)
    finally:
        bar.close()
    print(report.text())
    return 0
