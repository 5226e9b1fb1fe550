"""``python -m vitrep generate``: an input that a trained model takes for an ImageNet class."""

from __future__ import annotations

from ..errors import ConfigError
from .common import Bar, add_io_args, add_model_args, make_ref_from_args, open_memo


def add(sub) -> None:
    ge = sub.add_parser("generate", help="generate an input that a trained model takes for an ImageNet class")
    ge.add_argument("--class", dest="cls", default=None, help="class name (searched) or index 0-999")
    ge.add_argument("--search", default=None, help="list the ImageNet classes matching this text and exit")
    ge.add_argument("--steps", type=int, default=400)
    ge.add_argument("--lr", type=float, default=None, help="step size in pixel units at the start (default 0.05)")
    ge.add_argument("--lr-end", type=float, default=None)
    ge.add_argument("--jitter", type=int, default=None, help="canvas enlargement in pixels for the jitter phase (default 32; 0 = off)")
    ge.add_argument("--jitter-start", type=int, default=None, help="step where jitter begins (default 200)")
    ge.add_argument("--raw-grad", action="store_true", help="the paper's raw step lr*g instead of lr*g/mean|g|")
    ge.add_argument("--seed", type=int, default=0)
    add_io_args(ge, image=False)
    add_model_args(ge)


def command(a) -> int:
    from ..experiments.generate import GenerateRun, run
    from ..generate import make_generate_config, search_classes

    if a.search:
        for i, n in search_classes(a.search, limit=50):
            print(f"{i:>4}  {n}")
        return 0
    if a.cls is None:
        raise ConfigError("Choose a class with --class NAME (or an index 0-999); --search TEXT lists matches.")
    kw = {k: v for k, v in (("lr_start", a.lr), ("lr_end", a.lr_end), ("jitter", a.jitter),
                            ("jitter_start", a.jitter_start)) if v is not None}
    cfg = make_generate_config(make_ref_from_args(a, weights="trained"), a.cls, steps=a.steps, seed=a.seed,
                               normalize_grad=not a.raw_grad, device=a.device or "auto", **kw)
    bar = Bar(cfg.steps, a.quiet, f"class {cfg.class_index}")
    try:
        report = run(GenerateRun(cfg, a.out or "out/generate"), open_memo(a),
                     progress=None if a.quiet else (lambda p: bar.to(p.step, logit=f"{p.rows[0]['target_logit']:.3g}")))
    finally:
        bar.close()
    print(report.text())
    return 0
