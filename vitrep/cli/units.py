"""``python -m vitrep units``: what a channel, an MLP unit, an attention head or a direction responds to."""

from __future__ import annotations

from ..errors import ConfigError
from .common import Bar, add_io_args, add_model_args, make_ref_from_args, open_memo


def add(sub) -> None:
    un = sub.add_parser("units", help="visualise units: channels, MLP units, attention heads, directions")
    un.add_argument("--layer", default=None, help="a layer (number or tap, as for reconstruct); for --kind mlp "
                                                  "or head, a block number")
    un.add_argument("--kind", default="channel", choices=("channel", "neuron", "mlp", "head", "direction", "logit"),
                    help="what a unit is (default channel)")
    un.add_argument("--units", default="0-7", help="unit numbers, e.g. 0-15 or 3,7,9 (default 0-7)")
    un.add_argument("--top", type=int, default=None, metavar="K",
                    help="instead of --units: the K units most active on --image")
    un.add_argument("--objective", action="append", default=None, metavar="TEXT",
                    help="an objective of your own, one image each, e.g. \"mlp(6, 3) + 0.5 * head(6, 1)\" or "
                         "\"match(4)\" (with --image); repeat for more; overrides --kind/--units")
    un.add_argument("--remove", default=None, help="components to remove, e.g. attention,ln_2")
    un.add_argument("--blocks", default=None, help="blocks the removal applies to, e.g. 1-4,7 (default all)")
    un.add_argument("--param", default="fourier", choices=("fourier", "pixel"),
                    help="the image's parameterisation (default fourier: lucent's, colour-decorrelated)")
    un.add_argument("--steps", type=int, default=256)
    un.add_argument("--lr", type=float, default=0.05, help="Adam's step size (default 0.05)")
    un.add_argument("--jitter", type=int, default=8, help="random shift in pixels each step (default 8; 0 = off)")
    un.add_argument("--scale", type=float, default=0.1, help="random scale 1 +- this each step (default 0.1)")
    un.add_argument("--rotate", type=float, default=10.0, help="random rotation in degrees each step (default 10)")
    un.add_argument("--blur", action="store_true", help="the write-up's blur after each step (--param pixel)")
    un.add_argument("--seed", type=int, default=0)
    add_io_args(un)
    add_model_args(un)


def command(a) -> int:
    from ..experiments.units import UnitsRun, objectives_for, run
    from ..units import make_units_config, unit_range

    ref = make_ref_from_args(a)
    layer = a.layer if a.layer is not None else (ref.adapter.default_layer(ref.num_blocks) if a.kind not in
                                                 ("mlp", "head", "logit") else "1")
    if a.kind in ("mlp", "head") and not str(layer).strip().isdigit():
        raise ConfigError(f"--kind {a.kind} takes a block number as --layer, e.g. --layer 6.")
    top = None
    if a.objective:
        objectives = tuple(a.objective)
    elif a.kind == "logit":
        objectives = tuple(f"logit({u})" for u in unit_range(a.units))
    else:
        objectives = objectives_for(a.kind, layer, unit_range(a.units))
        if a.top is not None:
            if a.top < 1:
                raise ConfigError("--top takes a number of units from 1.")
            top = (a.kind, layer, a.top)
    cfg = make_units_config(ref, objectives, remove=a.remove or (), blocks=a.blocks, param=a.param, steps=a.steps,
                            lr=a.lr, jitter=a.jitter, scale=a.scale, rotate=a.rotate, blur=a.blur, seed=a.seed,
                            device=a.device or "auto")
    bar = Bar(cfg.steps, a.quiet, "units")
    try:
        report = run(UnitsRun(cfg, a.image, top, a.out or "out/units"), open_memo(a),
                     progress=None if a.quiet else (lambda p: bar.to(p.step, score=f"{p.rows[0]['score']:.3g}")))
    finally:
        bar.close()
    print(report.text())
    return 0
