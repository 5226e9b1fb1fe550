"""The model registry: named specs, the hashable choice of a model (:class:`ModelRef`), devices.

A :class:`ModelSpec` (declared by its family's adapter,
:mod:`vitrep.models.families`) carries what a model needs besides its
weights: its family (which taps and surgery apply), input size,
normalisation, an untrained builder, a display label and where its trained
weights come from.  A :class:`ModelRef` is the hashable choice a config
makes (name, weights, seed, architecture overrides, swaps), checked once
(:func:`make_ref`, :func:`check_ref`); :mod:`vitrep.models.weights` builds
it and :mod:`vitrep.models.pool` shares the built model.  Any supported
timm model is a spec too, as ``timm:NAME``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from .. import fields as F
from .. import limits
from ..errors import ConfigError
from .families import FAMILIES, ModelSpec

SPECS: dict[str, ModelSpec] = {s.name: s for f in FAMILIES.values() for s in f.specs}

ARCH_KEYS = ("patch", "width", "depth", "heads", "size")


@dataclass(frozen=True)
class ModelRef:
    """A hashable choice of model: name, weights, init seed, architecture, swaps.

    ``weights`` is ``"untrained"`` (built from ``seed``), ``"trained"`` (the
    spec's standard weights) or a path to a checkpoint file.  ``swaps`` names
    state_dict entries (or aliases such as ``stem``) copied from
    ``swap_from`` (``"trained"``, ``"untrained"`` or a file) after loading.
    """

    name: str
    weights: str = "untrained"
    seed: int = 0
    patch: Optional[int] = None
    width: Optional[int] = None
    depth: Optional[int] = None
    heads: Optional[int] = None
    size: Optional[int] = None
    swaps: tuple[str, ...] = ()
    swap_from: str = "trained"

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.name)

    def arch(self) -> dict:
        """The resolved architecture options of a configurable model (empty for fixed ones)."""
        out = dict(self.spec.arch_defaults)
        for k in out:
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @property
    def adapter(self):
        """The family adapter (:mod:`vitrep.models.families`): taps, components, swaps of this model."""
        return self.spec.adapter

    @property
    def num_blocks(self) -> int:
        """Encoders / blocks (ResNet: stages) of the resolved architecture."""
        return self.arch().get("depth", self.spec.depth)

    @property
    def input_size(self) -> int:
        if self.size is not None:
            return self.size
        return self.arch().get("size", self.spec.size)

    def to_dict(self) -> dict:
        """Plain JSON values (``swaps`` as a list)."""
        return {**asdict(self), "swaps": list(self.swaps)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "model") -> "ModelRef":
        """A ref from JSON values, every field's type and bounds checked (a one-sentence ConfigError naming
        it); where its files are and whether this server takes it are :func:`check_ref`'s business."""
        from dataclasses import fields as dc_fields

        d = F.mapping(d, where, known=[f.name for f in dc_fields(cls)])
        if "name" not in d:
            raise ConfigError(f"{where} has no name; give one such as \"vit_b_32\".")
        kw = {"name": F.text(d["name"], f"{where}.name", max_len=100),
              "weights": F.text(d.get("weights", "untrained"), f"{where}.weights"),
              "seed": F.whole(d.get("seed", 0), f"{where}.seed", 0, limits.MAX_SEED),
              "swaps": F.names(d.get("swaps", ()), f"{where}.swaps"),
              "swap_from": F.text(d.get("swap_from", "trained"), f"{where}.swap_from")}
        for k in ARCH_KEYS:
            v = d.get(k)
            kw[k] = None if v is None else F.whole(v, f"{where}.{k}", 1, limits.MAX_ARCH[k])
        return cls(**kw)

    def label(self) -> str:
        arch = self.arch()
        extra = "" if not arch else "(" + ",".join(f"{k}={v}" for k, v in arch.items()) + ")"
        w = self.weights if self.weights in ("trained", "untrained") else Path(self.weights).name
        s = f"{self.name}{extra} {w}"
        if self.swaps:
            s += f" + {','.join(self.swaps)} from {self.swap_from if self.swap_from in ('trained', 'untrained') else Path(self.swap_from).name}"
        return s


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model, or of any supported timm model as ``timm:NAME``."""
    from .families.timm_models import is_timm, timm_spec

    if is_timm(name):
        return timm_spec(name)
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(f"There is no model called {name!r}; choose one of {', '.join(SPECS)}, or any supported "
                          f"timm model as timm:NAME.") from None


def make_ref(name: str, weights: str = "untrained", seed: int = 0, swaps=(), swap_from: str = "trained",
             **arch) -> ModelRef:
    """Validated :class:`ModelRef`; architecture options only where the spec takes them (:func:`check_ref`)."""
    spec = get_spec(F.text(name, "The model name", max_len=100))
    arch = {k: v for k, v in arch.items() if v is not None}
    bad = [k for k in arch if k not in ARCH_KEYS]
    if bad:
        raise ConfigError(f"Unknown architecture option {bad[0]!r}.")
    allowed = dict(spec.arch_defaults)
    for k in arch:
        if k == "size" and spec.adapter.takes_any_size:
            continue  # ResNet takes any input size
        if k not in allowed:
            raise ConfigError(f"{name} has a fixed architecture; --{k} applies only to {', '.join(n for n, s in SPECS.items() if s.configurable)}.")
    weights = _source(weights, "Weights")
    if isinstance(swaps, str):
        swaps = tuple(s for s in swaps.replace(" ", "").split(",") if s)
    swap_from = _source(swap_from, "--swap-from")
    ref = ModelRef(name, weights, seed, swaps=F.names(swaps, "swaps"), swap_from=swap_from, **arch)
    return check_ref(ref)


def _source(value, what: str) -> str:
    """``trained``, ``untrained`` or an existing regular file (its path, ``~`` expanded)."""
    value = F.text(value, what)
    if value in ("trained", "untrained"):
        return value
    path = str(Path(value).expanduser())
    if not Path(path).is_file():
        raise ConfigError(f"{what} must be 'trained', 'untrained' or a checkpoint file, and {path!r} is no file.")
    return path


def check_ref(ref: ModelRef) -> ModelRef:
    """Check ``ref`` against every bound, and in public mode against this server's limits; return it.

    Every mode: whole numbers where numbers go (:mod:`vitrep.fields`), the
    architecture within :data:`vitrep.limits.MAX_ARCH`, the input size a
    multiple of the patch, the width of the heads.  Public mode
    (:func:`vitrep.limits.public_mode`): the architecture within
    :func:`vitrep.limits.arch_bounds` (at most the registry's defaults), a
    model that takes any input size at most its own, and checkpoint files
    (weights, swap source) only inside :func:`vitrep.limits.upload_root`,
    symlinks and ``..`` resolved.  The one place the engine enforces the
    public limits of a model (:func:`vitrep.config.validate` calls it).
    """
    spec = get_spec(ref.name)
    F.whole(ref.seed, "The model seed", 0, limits.MAX_SEED)
    F.names(ref.swaps, "swaps")
    public = limits.public_mode()
    defaults = dict(spec.arch_defaults)
    if spec.adapter.takes_any_size and not defaults:
        defaults = {"size": spec.size}
    bounds = limits.arch_bounds(defaults)
    for k, (lo, hi) in bounds.items():
        v = getattr(ref, k)
        if v is None:
            continue
        if public and isinstance(v, int) and not isinstance(v, bool) and not lo <= v <= hi:
            side = f"at least {lo}" if v < lo else f"at most {hi}"
            raise ConfigError(f"This public server takes {k} {side} for {ref.name}, not {v}; run vitrep on your own "
                              f"machine for larger models.")
        F.whole(v, k, 1, limits.MAX_ARCH[k])
    for what, src in (("weights", ref.weights), ("swap source", ref.swap_from)):
        F.text(src, what)
        if public and src not in ("trained", "untrained") and not limits.inside_upload_root(src):
            raise ConfigError(f"On this public server the {what} must be 'trained', 'untrained' or an uploaded "
                              f"checkpoint, not a path on the server.")
    a = ref.arch()
    if a and a["size"] % a["patch"]:
        raise ConfigError(f"Input size {a['size']} is not a multiple of the patch size {a['patch']}.")
    if "heads" in a and a["width"] % a["heads"]:
        raise ConfigError(f"Width {a['width']} is not divisible by {a['heads']} heads.")
    return ref


# --- weights files --------------------------------------------------------------------------------


# --- building and loading -------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` (CUDA if present), ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a torch device; anything else,
    ``meta`` included, is a one-sentence ConfigError."""
    if device in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or len(device) > 16:
        raise ConfigError(f"The device must be auto, cpu or cuda, not {F.show(device)}.")
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"{device!r} is not a device name; use auto, cpu or cuda.")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("A CUDA device was asked for, but this machine has no usable GPU; use --device cpu.")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"This machine has {torch.cuda.device_count()} GPU(s), so there is no {device}.")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("An MPS device was asked for, but this machine has none; use --device cpu.")
    return torch.device(device)


