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

import json
import math
import sys
import weakref
from pathlib import Path
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Optional

from . import fields as F
from . import limits
from . import precision as P
from .errors import ConfigError
from .models.registry import ARCH_KEYS, ModelRef, check_ref, make_ref, resolve_device
from .models.surgery import MAX_BLOCK, Surgery, make_surgery

LOSSES = ("l1", "l2")
OPTIMIZERS = ("gd", "adam")
# Fields that every row of one batch shares (the rest may differ per row).
SHARED_FIELDS = ("model", "steps", "optimizer", "lr_start", "lr_end", "loss", "loss_scale", "blur_start",
                 "blur_end", "clamp", "report_every", "device", "backoff", "precision")


def _opt(default, help: str, flag: Optional[str] = None, choices: Optional[tuple] = None, type=None):
    """A config field with its help, command-line flag name and choices (the single source of all three)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "type": type})


@dataclass(frozen=True)
class ReconstructConfig:
    """Everything that determines a reconstruction (frozen, hashable, a cache key).

    ``loss``: ``l1`` is the paper's ``scale * sum|t - O(a_n)|``; ``l2`` is
    ``scale * sum (t - O(a_n))^2``.  ``blur_start``/``blur_end`` are the 3x3
    Gaussian's sigma, decaying linearly (0 turns blurring off).
    ``optimizer``: ``gd`` is the paper's plain step ``a - lr * g``; ``adam``
    scales each pixel's step by its gradient history, so ``lr`` is in pixel
    units whatever the model's output scale.  ``auto`` (and ``lr_start`` /
    ``lr_end`` of ``None``) take the calibrated defaults for the model family
    and the tap's depth (:mod:`vitrep.calibration`); :func:`validate` resolves
    them, so a validated config holds plain numbers.  ``backoff``: at a
    blow-up (the loss far above its best, non-finite, or pixels running off
    to large values) the row returns to its best image and continues at a
    quarter of the step; the result counts these.
    ``normalize`` feeds the model ``(a - mean) / std`` (the paper fed raw [0,1]
    pixels); ``clamp`` keeps the image in [0,1] after every step (the paper did
    not).  ``pos_embed`` adds a ViT's positional embedding as the model does
    (False = the paper's figures).  ``precision``: ``bf16`` runs the model's
    products in bfloat16 (image, loss, blur, optimizer and metrics stay
    float32; :mod:`vitrep.precision`), ``tf32`` a CUDA GPU's products in TF32;
    ``auto`` takes either only where it was measured faster and faithful;
    :func:`validate` resolves it to what runs.
    """

    model: ModelRef
    tap: str = "encoder-1"
    surgery: Surgery = Surgery()
    pos_embed: bool = _opt(True, "add the positional embedding as the model does; off: leave it out, as the "
                                 "paper's figures did", flag="pos-embed")
    steps: int = _opt(300, "gradient descent steps")
    optimizer: str = _opt("auto", "auto: the calibrated choice (adam); adam; or gd, the paper's plain step "
                                  "a - lr*g", choices=("auto",) + OPTIMIZERS)
    lr_start: Optional[float] = _opt(None, "step size at the first step (default: calibrated for the model "
                                           "family and layer depth)", flag="lr", type=float)
    lr_end: Optional[float] = _opt(None, "step size at the last step (default: calibrated)", type=float)
    loss: str = _opt("l1", "l1: s × Σ|t − O| (the paper's); l2: s × Σ(t − O)²", choices=LOSSES)
    loss_scale: float = _opt(0.05, "the loss's scale s")
    blur_start: float = _opt(2.4, "3x3 Gaussian sigma at the first step (0 = off)", flag="blur")
    blur_end: float = _opt(0.4, "sigma at the last step")
    clamp: bool = _opt(False, "clamp the image to [0,1] after every step")
    normalize: bool = _opt(False, "feed the model ImageNet-normalised pixels (the paper fed raw [0,1])")
    init_mean: float = _opt(0.7, "mean of the starting noise")
    init_std: float = _opt(0.05, "std of the starting noise (1/20)")
    seed: int = _opt(0, "seed of the starting noise and the a' baseline")
    report_every: int = _opt(10, "record curves every N steps")
    device: str = _opt("auto", "auto (CUDA if present), cpu or cuda")
    resize: str = _opt("crop", "crop: keep proportions, centre crop; pad: keep the whole image, pad with its mean "
                               "colour; stretch: the paper's plain resize", choices=("crop", "pad", "stretch"))
    backoff: bool = _opt(True, "at a blow-up, return to the best image and go on at a quarter of the step; "
                               "off: do not step back", flag="backoff")
    precision: str = _opt("fp32", "the model's products: fp32; bf16 (bfloat16 products, fp32 image, loss and "
                                  "metrics; CPUs with AMX or AVX-512 BF16); tf32 (TF32 products on a CUDA GPU of "
                                  "the Ampere generation or newer); auto: bf16 or tf32 only where measured faster "
                                  "and faithful", choices=P.PRECISIONS)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["surgery"] = self.surgery.to_dict()
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReconstructConfig":
        """A config from JSON values (``to_dict``'s, a result.json's ``config``), every field's type and bounds
        checked: anything else is one sentence (a ConfigError) naming the field, never a traceback."""
        F.mapping(d, "The config")
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ConfigError(f"The config has unknown field(s) {', '.join(F.show(k) for k in unknown[:5])}.")
        if "model" not in d:
            raise ConfigError("The config has no model; give one such as {\"name\": \"vit_b_32\"}.")
        model = ModelRef.from_dict(d.pop("model"))
        surgery = Surgery.from_dict(d.pop("surgery", None))
        for name, value in d.items():
            check_field(name, value)
        return cls(model=model, surgery=surgery, **d)


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
        raise ConfigError(f"Optimizer {c.optimizer!r} is not known; use gd (the paper's plain step) or adam.")
    if c.optimizer != "auto" and c.lr_start is not None and c.lr_end is not None:
        return c
    opt, lr0, lr1 = default_schedule(c.model, c.tap, None if c.optimizer == "auto" else c.optimizer)
    return replace(c, optimizer=opt, lr_start=lr0 if c.lr_start is None else c.lr_start,
                   lr_end=(lr1 if c.lr_start is None else c.lr_start * lr1 / lr0) if c.lr_end is None else c.lr_end)


def resolve_precision(c: ReconstructConfig) -> ReconstructConfig:
    """``c`` with its precision resolved to what runs (``auto``: bf16 only where measured to pay; bf16 where it
    cannot run: one sentence)."""
    p = P.resolve(c.precision, c.model.adapter.auto_bf16, resolve_device(c.device))
    return c if p == c.precision else replace(c, precision=p)


_VALID: "weakref.WeakSet[ReconstructConfig]" = weakref.WeakSet()  # configs validate() has returned
_VALID_MODE = [None]  # the public mode they were checked in: a change of mode checks them again


def validate(c: ReconstructConfig) -> ReconstructConfig:
    """Check every value and resolve the calibrated defaults; a config this returned is not checked again
    (while the server's mode stays the same)."""
    mode = limits.public_mode()
    if _VALID_MODE[0] != mode:
        _VALID.clear()
        _VALID_MODE[0] = mode
    try:
        known = c in _VALID
    except TypeError:  # an unhashable value (a list where a name goes): _fields says which
        known = False
    if known:
        return c
    c = _check(resolve_precision(resolve_defaults(_fields(c))))
    _VALID.add(c)
    return c


MAX_REPORT_EVERY = limits.MAX_STEPS
BIG = sys.float_info.max  # finite is the only bound of a step size


def _choice(*names):
    return lambda v, name: F.text(v, name, names)


# Every user-settable field's type and bounds (of every mode; public limits come on top in _check).
FIELD_CHECKS = {
    "tap": lambda v, name: F.text(v, name, max_len=100),
    "pos_embed": F.flag, "clamp": F.flag, "normalize": F.flag, "backoff": F.flag,
    "steps": F.whole_in(1, limits.MAX_STEPS),
    "optimizer": _choice("auto", *OPTIMIZERS),
    # a step size or scale too large diverges, and the result says so (status "diverged at step k")
    "lr_start": F.number_in(0.0, BIG, optional=True), "lr_end": F.number_in(0.0, BIG, optional=True),
    "loss": _choice(*LOSSES),
    "loss_scale": F.number_in(0.0, BIG),
    "blur_start": F.number_in(0.0, 100.0), "blur_end": F.number_in(0.0, 100.0),
    "init_mean": F.number_in(-10.0, 10.0), "init_std": F.number_in(0.0, 10.0),
    "seed": F.whole_in(0, limits.MAX_SEED),
    "report_every": F.whole_in(1, MAX_REPORT_EVERY),
    "device": lambda v, name: F.text(v, name, max_len=16),
    "resize": _choice("crop", "stretch"),
    "precision": _choice(*P.PRECISIONS),
}


def check_field(name: str, value):
    """``value`` if it is of ``name``'s type and within its bounds, else a one-sentence ConfigError naming it."""
    return FIELD_CHECKS[name](value, name)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fields(c: ReconstructConfig) -> ReconstructConfig:
    """Every field's type and bounds (of every mode), the model's too (:func:`vitrep.models.registry.check_ref`)."""
    if not isinstance(c.model, ModelRef):
        raise ConfigError("The config's model must be a model reference (vitrep.models.registry.make_ref).")
    check_ref(c.model)
    if _is_int(c.steps) and c.steps < 1:
        raise ConfigError(f"Steps must be at least 1, not {c.steps}.")
    if _is_int(c.steps):
        _step_limit(c.steps)
    if isinstance(c.loss, str) and c.loss not in LOSSES:
        raise ConfigError(f"Loss {c.loss!r} is not known; use l1 or l2.")
    if _is_int(c.report_every) and c.report_every < 1:
        raise ConfigError("The report interval must be at least 1 step.")
    for name in ("lr_start", "lr_end", "loss_scale", "init_std", "blur_start", "blur_end", "init_mean"):
        v = getattr(c, name)
        if isinstance(v, float) and not math.isfinite(v) or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                               and v < 0 and name != "init_mean"):
            raise ConfigError(f"{name.replace('_', ' ')} must be a finite number"
                              f"{' >= 0' if name != 'init_mean' else ''}, not {v}.")
    for f in options():
        check_field(f.name, getattr(c, f.name))
    check_field("tap", c.tap)
    if not isinstance(c.surgery, Surgery):
        raise ConfigError("The config's surgery must be a Surgery (vitrep.models.surgery.make_surgery).")
    F.names(c.surgery.remove, "surgery.remove")
    if c.surgery.blocks is not None:
        F.wholes(c.surgery.blocks, "surgery.blocks", 1, MAX_BLOCK)
    resolve_device(c.device)
    return c


def _step_limit(steps: int) -> None:
    if steps > limits.max_steps():
        raise ConfigError(f"This public server runs at most {limits.PUBLIC_MAX_STEPS:,} steps, not {steps:,}; "
                          f"run vitrep on your own machine for more." if limits.public_mode() else
                          f"Steps must be at most {limits.MAX_STEPS:,}, not {steps:,}.")


def _check(c: ReconstructConfig) -> ReconstructConfig:
    """The resolved config against this server's limits: with :func:`vitrep.models.registry.check_ref` (which
    :func:`_fields` ran) the one place the engine enforces public mode for a reconstruction."""
    _step_limit(c.steps)
    for name in ("lr_start", "lr_end"):  # resolved now: the calibrated numbers, or the user's
        F.number(getattr(c, name), name, 0.0, BIG)
    return c


MAX_CONFIG_BYTES = 1 << 20  # a config or result.json is a few kB; a result.json with curves well under 1 MB


def read_config_file(path: str | Path) -> dict:
    """The config in a JSON file (a config, or a result.json whose ``config`` it is), as a plain dict
    checked by :meth:`ReconstructConfig.from_dict` later.  Only a regular file, read at most
    :data:`MAX_CONFIG_BYTES` (``/dev/zero`` or a FIFO is a sentence, not a hang); every failure is one
    sentence naming the file."""
    p = Path(path).expanduser()
    name = str(path)
    try:
        if not p.is_file():
            raise ConfigError(f"{name} is not a config file ({'no such file' if not p.exists() else 'not a regular file'}).")
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        raise ConfigError(f"{name} is not a readable JSON config.") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name} is more than {MAX_CONFIG_BYTES >> 20} MB, too large for a config.")
    try:
        doc = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ConfigError(f"{name} is nested too deeply to be a config.") from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{name} is not a readable JSON config.") from None
    if isinstance(doc, dict) and "config" in doc:
        doc = doc["config"]
    if not isinstance(doc, dict):
        raise ConfigError(f"{name} must hold a JSON object of config fields (or a result.json), not {F.show(doc)}.")
    return doc

