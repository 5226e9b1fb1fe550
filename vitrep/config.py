"""The reconstruction config: its fields, defaults and help in one place, validated once.

:class:`ReconstructConfig` is the single source of a run's options: each
field carries its default and its help text (``metadata``), from which the
command line builds its flags (:func:`options`); the dashboard's widgets are
checked against them by a test.  :func:`make_config` turns user-level values
(model name, layer text, component names) into a config and validates it;
:func:`validate` remembers what it has checked, so a config passed on from
page to memo to loop is checked once.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Optional

from .errors import ConfigError
from .models import ARCH_KEYS, ModelRef, make_ref, resolve_device
from .surgery import Surgery, make_surgery

LOSSES = ("l1", "l2")
OPTIMIZERS = ("gd", "adam")
# Fields that every row of one batch shares (the rest may differ per row).
SHARED_FIELDS = ("model", "steps", "optimizer", "lr_start", "lr_end", "loss", "loss_scale", "blur_start",
                 "blur_end", "clamp", "report_every", "device", "backoff")


def _opt(default, help: str, flag: Optional[str] = None, choices: Optional[tuple] = None, type=None):
    """A config field with its help, command-line flag name and choices (the single source of all three)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "type": type})


@dataclass(frozen=True)
class ReconstructConfig:
    """Everything that determines a reconstruction (frozen, hashable, a cache key).

    ``loss``: ``l1`` is the page's ``scale * sum|t - O(a_n)|``; ``l2`` is
    ``scale * sum (t - O(a_n))^2``.  ``blur_start``/``blur_end`` are the 3x3
    Gaussian's sigma, decaying linearly (0 turns blurring off).
    ``optimizer``: ``gd`` is the page's plain step ``a - lr * g``; ``adam``
    scales each pixel's step by its gradient history, so ``lr`` is in pixel
    units whatever the model's output scale.  ``auto`` (and ``lr_start`` /
    ``lr_end`` of ``None``) take the calibrated defaults for the model family
    and the tap's depth (:mod:`vitrep.calibration`); :func:`validate` resolves
    them, so a validated config holds plain numbers.  ``backoff``: at a
    blow-up (the loss far above its best, non-finite, or pixels running off
    to large values) the row returns to its best image and continues at a
    quarter of the step; the result counts these.
    ``normalize`` feeds the model ``(a - mean) / std`` (the page fed raw [0,1]
    pixels); ``clamp`` keeps the image in [0,1] after every step (the page did
    not).  ``pos_embed`` adds a ViT's positional embedding as the model does
    (False = the page's figures).
    """

    model: ModelRef
    tap: str = "encoder-1"
    surgery: Surgery = Surgery()
    pos_embed: bool = _opt(True, "add the positional embedding as the model does; off: leave it out, as the "
                                 "page's figures did", flag="pos-embed")
    steps: int = _opt(300, "gradient descent steps")
    optimizer: str = _opt("auto", "auto: the calibrated choice (adam); adam; or gd, the page's plain step "
                                  "a - lr*g", choices=("auto",) + OPTIMIZERS)
    lr_start: Optional[float] = _opt(None, "step size at the first step (default: calibrated for the model "
                                           "family and layer depth)", flag="lr", type=float)
    lr_end: Optional[float] = _opt(None, "step size at the last step (default: calibrated)", type=float)
    loss: str = _opt("l1", "l1: scale*sum|t-O| (the page's); l2: scale*sum (t-O)^2", choices=LOSSES)
    loss_scale: float = _opt(0.05, "the loss's scale s")
    blur_start: float = _opt(2.4, "3x3 Gaussian sigma at the first step (0 = off)", flag="blur")
    blur_end: float = _opt(0.4, "sigma at the last step")
    clamp: bool = _opt(False, "clamp the image to [0,1] after every step")
    normalize: bool = _opt(False, "feed the model ImageNet-normalised pixels (the page fed raw [0,1])")
    init_mean: float = _opt(0.7, "mean of the starting noise")
    init_std: float = _opt(0.05, "std of the starting noise (1/20)")
    seed: int = _opt(0, "seed of the starting noise and the a' baseline")
    report_every: int = _opt(10, "record curves every N steps")
    device: str = _opt("auto", "auto (CUDA if present), cpu or cuda")
    resize: str = _opt("crop", "crop: keep proportions, centre crop; stretch: the page's plain resize",
                       choices=("crop", "stretch"))
    backoff: bool = _opt(True, "at a blow-up, return to the best image and go on at a quarter of the step; "
                               "off: do not step back", flag="backoff")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["surgery"] = {"remove": list(self.surgery.remove),
                        "blocks": None if self.surgery.blocks is None else list(self.surgery.blocks)}
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReconstructConfig":
        d = dict(d)
        model = ModelRef.from_dict(d.pop("model"))
        s = d.pop("surgery", None) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"The config has unknown field(s) {', '.join(sorted(unknown))}.")
        blocks = s.get("blocks")
        return cls(model=model,
                   surgery=Surgery(tuple(s.get("remove", ())), None if blocks is None else tuple(blocks)), **d)


def options() -> list:
    """The user-settable fields: ``dataclasses.Field`` s with ``metadata`` help, flag and choices."""
    return [f for f in fields(ReconstructConfig) if "help" in f.metadata]


def default_of(name: str):
    f = next(f for f in fields(ReconstructConfig) if f.name == name)
    return None if f.default is MISSING else f.default


def make_config(model: str | ModelRef = "vit_b_32", layer: str | int = 1, *, weights: str = "untrained",
                remove=(), blocks=None, **kw) -> ReconstructConfig:
    """Build and validate a config from user-level values (model name, layer text, component names)."""
    ref = model if isinstance(model, ModelRef) else make_ref(model, weights, seed=kw.pop("model_seed", 0),
                                                             **{k: kw.pop(k) for k in ARCH_KEYS + ("swaps", "swap_from") if k in kw})
    adapter, depth = ref.adapter, ref.num_blocks
    tap = adapter.parse_tap(layer, depth)
    surgery = make_surgery(adapter, remove, blocks, adapter.surgery_blocks(depth))
    return validate(ReconstructConfig(model=ref, tap=tap, surgery=surgery, **kw))


def resolve_defaults(c: ReconstructConfig) -> ReconstructConfig:
    """``c`` with the calibrated defaults filled in (an ``auto`` optimiser, an lr of ``None``)."""
    from .calibration import default_schedule

    if c.optimizer not in OPTIMIZERS + ("auto",):
        raise ConfigError(f"Optimizer {c.optimizer!r} is not known; use gd (the page's plain step) or adam.")
    if c.optimizer != "auto" and c.lr_start is not None and c.lr_end is not None:
        return c
    opt, lr0, lr1 = default_schedule(c.model, c.tap, None if c.optimizer == "auto" else c.optimizer)
    return replace(c, optimizer=opt, lr_start=lr0 if c.lr_start is None else c.lr_start,
                   lr_end=(lr1 if c.lr_start is None else c.lr_start * lr1 / lr0) if c.lr_end is None else c.lr_end)


_VALID: "weakref.WeakSet[ReconstructConfig]" = weakref.WeakSet()  # configs validate() has returned


def validate(c: ReconstructConfig) -> ReconstructConfig:
    """Check every value and resolve the calibrated defaults; a config this returned is not checked again."""
    if c in _VALID:
        return c
    c = _check(resolve_defaults(c))
    _VALID.add(c)
    return c


def _check(c: ReconstructConfig) -> ReconstructConfig:
    if c.steps < 1:
        raise ConfigError(f"Steps must be at least 1, not {c.steps}.")
    if c.loss not in LOSSES:
        raise ConfigError(f"Loss {c.loss!r} is not known; use l1 or l2.")
    if c.report_every < 1:
        raise ConfigError("The report interval must be at least 1 step.")
    for name in ("lr_start", "lr_end", "loss_scale", "init_std", "blur_start", "blur_end"):
        v = getattr(c, name)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"{name.replace('_', ' ')} must be a finite number >= 0, not {v}.")
    resolve_device(c.device)
    return c
