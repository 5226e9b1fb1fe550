"""The model registry: named specs, weights, local checkpoints, swaps.

A :class:`ModelSpec` (declared by its family's adapter, :mod:`vitrep.families`)
carries what a model needs besides its weights: family (which taps and surgery apply), input size, normalisation, an untrained
builder and where its trained weights come from.  A :class:`ModelRef` is the
hashable choice a config makes (name, weights, seed, architecture overrides,
swaps); :func:`load_model` turns it into a shared, read-only
:class:`LoadedModel` (eval mode, ``requires_grad`` off), cached per process
(least recently used first; evicted beyond the memory budget of
:mod:`vitrep.budget`).

Trained weights go through the standard download-and-cache paths
(torch.hub's ``checkpoints/`` folder for torchvision, the Hugging Face cache
for timm).  Offline, a missing file raises :class:`WeightsUnavailable` naming
the file and the folder it belongs in.  Local checkpoints are read with
safetensors or ``torch.load(weights_only=True)``; never an unrestricted
unpickle.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from . import fields as F
from . import limits
from .errors import CheckpointError, ConfigError, WeightsUnavailable

from .families import FAMILIES, ModelSpec, TrainedSource

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
        """The family adapter (:mod:`vitrep.families`): taps, components, swaps of this model."""
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

def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hf_cached(repo: str, filename: str) -> Optional[str]:
    try:
        from huggingface_hub import try_to_load_from_cache

        p = try_to_load_from_cache(repo, filename)
        return p if isinstance(p, str) else None
    except Exception:
        return None


def trained_file_local(spec: ModelSpec) -> Optional[Path]:
    """The trained weights file if it is already on disk, else ``None`` (never downloads)."""
    src = spec.trained
    if src is None:
        return None
    if src.kind == "torchvision":
        p = hub_checkpoint_dir() / src.filename
        return p if p.is_file() else None
    p = _hf_cached(src.ident, src.filename)
    return Path(p) if p else None


def _missing(spec: ModelSpec) -> WeightsUnavailable:
    """The one-sentence error for missing trained weights, with each interface's way out."""
    return WeightsUnavailable(_missing_sentence(spec), hints={
        "cli": ", or load it as a local checkpoint with --weights FILE",
        "dashboard": ", or choose 'checkpoint file' under Weights and give the file"})


def _missing_sentence(spec: ModelSpec) -> str:
    src = spec.trained
    if src.kind == "torchvision":
        where = f"put it in {hub_checkpoint_dir()}/"
        what = src.filename
    else:
        where = "put it in the Hugging Face cache (~/.cache/huggingface/hub)"
        what = f"{src.filename} of {src.ident}"
    return (f"Trained weights for {spec.name} need the file {what}, which is not on this machine and could not be "
            f"downloaded: {where}.")


def weights_url(src: TrainedSource) -> str:
    """The download address of torchvision weights (torchvision's own enum)."""
    from torchvision.models import get_weight

    return get_weight(src.ident).url


def trained_file(spec: ModelSpec, progress: bool = False) -> Path:
    """Path of the trained weights, downloading through the standard cache if needed."""
    if spec.trained is None:
        raise ConfigError(f"{spec.name} has no published trained weights; use untrained or a checkpoint file.")
    local = trained_file_local(spec)
    if local is not None:
        return local
    if os.environ.get("VITREP_OFFLINE"):
        raise _missing(spec)
    src = spec.trained
    try:
        if src.kind == "torchvision":
            url = weights_url(src)
            dst = hub_checkpoint_dir() / src.filename
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(dst), hash_prefix=src.filename.rsplit("-", 1)[-1].split(".")[0],
                                           progress=progress)
            return dst
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(src.ident, src.filename))
    except Exception as exc:  # network errors come in many types; any failure means "not available"
        raise _missing(spec) from exc


_HASHES: dict[tuple, str] = {}


def file_identity(path: str | Path) -> str:
    """Content hash of a weights file (memoised by path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()[:24]
    return _HASHES[key]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely: safetensors, or ``torch.load(weights_only=True)``."""
    p = Path(path)
    name = p.name
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"The checkpoint file {str(p)!r} does not exist.") from None
    except Exception as exc:
        raise CheckpointError(
            f"{name} is not a readable checkpoint (a safetensors file or a plain tensor state_dict saved with torch.save).") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{name} does not hold a state_dict of named tensors.")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], what: str, model_name: str) -> None:
    """``load_state_dict`` with shape and key mismatches told in one sentence."""
    own = model.state_dict()
    shapes = [f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
              for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if shapes:
        raise CheckpointError(f"{what} does not fit {model_name}: {len(shapes)} tensor shape mismatch(es), e.g. {shapes[0]}.")
    result = model.load_state_dict(sd, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) such as {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) such as {unexpected[0]!r}")
        raise CheckpointError(f"{what} does not fit {model_name}: {' and '.join(parts)}.")


# --- building and loading -------------------------------------------------------------------------

@dataclass
class LoadedModel:
    """A ready model: eval mode, no parameter gradients, shared read-only between callers."""

    ref: ModelRef
    module: nn.Module
    identity: str  # weights identity, part of every cache key
    device: torch.device

    @property
    def spec(self) -> ModelSpec:
        return self.ref.spec

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def adapter(self):
        return self.spec.adapter

    @property
    def size(self) -> int:
        return self.ref.input_size

    @property
    def depth(self) -> int:
        return self.adapter.depth(self.module)


def build_untrained(ref: ModelRef) -> nn.Module:
    """The architecture with the seed's initialisation; does not touch the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ref.seed)
        return ref.spec.builder(**ref.adapter.builder_kwargs(ref))


def _source_identity(ref: ModelRef, weights: str) -> str:
    if weights == "untrained":
        return f"untrained-seed{ref.seed}"
    if weights == "trained":
        return f"trained:{ref.spec.trained.filename}" if ref.spec.trained else "trained:none"
    return f"file:{file_identity(weights)}"


def weights_identity(ref: ModelRef) -> str:
    """What the weights are, for cache keys, without building the model: seed, trained file or file hash."""
    identity = _source_identity(ref, ref.weights)
    if ref.swaps:
        identity += f"+swap[{','.join(ref.swaps)}]<-{_source_identity(ref, ref.swap_from)}"
    arch = ref.arch()
    if arch:
        identity += "|" + ",".join(f"{k}={v}" for k, v in arch.items())
    elif ref.size not in (None, ref.spec.size):
        identity += f"|size={ref.size}"
    return identity


def _state_dict_for(ref: ModelRef, weights: str, progress: bool) -> dict:
    if weights == "untrained":
        return build_untrained(ref).state_dict()
    if weights == "trained":
        return read_state_dict(trained_file(ref.spec, progress))
    return read_state_dict(weights)


def _resolve_swap(aliases: dict, name: str, keys: list[str]) -> list[str]:
    prefix = aliases.get(name, name)
    hit = [k for k in keys if k == prefix or k.startswith(prefix + ".")]
    if not hit:
        raise ConfigError(f"Nothing in this model is called {name!r}; swap one of {', '.join(aliases)} or a state_dict name such as {keys[0]!r}.")
    return hit


def swap_keys(ref: ModelRef, module: nn.Module) -> list[str]:
    """The state_dict names that ``ref.swaps`` copies."""
    keys = list(module.state_dict())
    return [k for name in ref.swaps for k in _resolve_swap(ref.adapter.swap_aliases, name, keys)]


def build_model(ref: ModelRef, progress: bool = False) -> tuple[nn.Module, str]:
    """A fresh module for ``ref`` and its weights identity (no caching)."""
    spec = ref.spec
    module = build_untrained(ref)
    if ref.weights != "untrained":
        sd = _state_dict_for(ref, ref.weights, progress)
        what = "The trained weights" if ref.weights == "trained" else Path(ref.weights).name
        load_into(module, sd, what, spec.name)
    if ref.swaps:
        keys = swap_keys(ref, module)
        donor = _state_dict_for(ref, ref.swap_from, progress)
        own = module.state_dict()
        for k in keys:
            if k not in donor:
                raise CheckpointError(f"The swap source has no tensor {k!r}.")
            if donor[k].shape != own[k].shape:
                raise CheckpointError(f"Cannot swap {k}: source shape {tuple(donor[k].shape)}, model {tuple(own[k].shape)}.")
        with torch.no_grad():
            for k in keys:
                own[k].copy_(donor[k])
    return module, weights_identity(ref)


# The shared models, least recently used first.  With a memory budget (vitrep/limits.py) the CPU
# models and their packs stay within it: a new model evicts from the front before it is built.
# _LOCK guards the cache itself and is held only for dictionary work, never through a build: a
# model is built under its own key's lock (_BUILDS), so a cached lookup never waits for another
# model's build, and two callers asking for one new model build it once.  A build under way
# reserves its estimate (_PENDING) so that concurrent builds together stay within the budget.
_MODELS: "OrderedDict[tuple, LoadedModel]" = OrderedDict()
_LOCK = threading.Lock()
_BUILDS: dict[tuple, list] = {}  # key -> [its build lock, callers holding or waiting for it]
_PENDING: dict[tuple, int] = {}  # key -> bytes reserved while it is built
log = logging.getLogger("vitrep")


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def held_bytes(lm: LoadedModel) -> int:
    """What a loaded model holds now: parameters, buffers and the oneDNN packs of its weights."""
    from . import fastops

    return module_bytes(lm.module) + fastops.pack_bytes(lm.module.parameters())


def reserved_bytes(lm: LoadedModel) -> int:
    """What a cached CPU model holds, or will hold once its packs are made: the more of
    :func:`held_bytes` and the estimate :func:`vitrep.budget.model_bytes` (a GPU model: 0,
    the memory budget counts host memory)."""
    if lm.device.type != "cpu":
        return 0
    from . import budget, fastops

    return max(held_bytes(lm), budget.model_bytes(lm.ref, fast=fastops.enabled()))


def cached_models() -> list[tuple[LoadedModel, int]]:
    """The cached models, least recently used first, each with :func:`held_bytes`."""
    with _LOCK:
        return [(lm, held_bytes(lm)) for lm in _MODELS.values()]


def cache_bytes() -> int:
    """What the cached CPU models hold or will hold once used (:func:`reserved_bytes`), all together."""
    with _LOCK:
        return sum(reserved_bytes(lm) for lm in _MODELS.values())


def is_cached(ref: ModelRef, device: str | torch.device = "auto") -> bool:
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return (ref, str(dev)) in _MODELS


def _evict(key: tuple, why: str) -> int:
    """Forget a cached model and drop its packs; whoever still uses it keeps it alive until done."""
    from . import fastops

    lm = _MODELS.pop(key)
    size = module_bytes(lm.module)
    freed = size + fastops.drop_packs(lm.module.parameters())
    log.info("evicted %s (%.0f MB) %s", lm.ref.label(), freed / 2 ** 20, why)
    return freed


def evict_models() -> int:
    """Forget every cached model (bytes they held); the next :func:`load_model` builds afresh."""
    with _LOCK:
        return sum(_evict(k, "on request") for k in list(_MODELS))


def _make_room(ref: ModelRef, key: tuple) -> None:
    """Evict least recently used CPU models until ``ref``'s estimate fits the budget beside the cached models
    and the builds under way; refuse a model alone over it.  Reserves ``ref``'s estimate under ``key``
    (:data:`_PENDING`) until its build ends.  Called with :data:`_LOCK` held."""
    from . import budget, fastops

    limit = limits.memory_budget_bytes()
    if limit is None:
        return
    need = budget.model_bytes(ref, fast=fastops.enabled())  # a CPU model: packs when the path is on
    if need > limit:
        raise budget.MemoryBudgetError(budget.too_big(ref, need, limit) +
                                       "; set VITREP_MEMORY_MB higher (or to 'unlimited') to run it.")
    for k in list(_MODELS):
        if sum(reserved_bytes(lm) for lm in _MODELS.values()) + sum(_PENDING.values()) + need <= limit:
            break
        if _MODELS[k].device.type == "cpu":
            _evict(k, f"to make room for {ref.label()} (about {need / 2 ** 20:.0f} MB; budget {limit / 2 ** 20:.0f} MB)")
    _PENDING[key] = need


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


def load_model(ref: ModelRef, device: str | torch.device = "auto", progress: bool = False) -> LoadedModel:
    """The shared, frozen model for ``ref`` on ``device`` (built once per process while it stays cached).

    With a memory budget (``VITREP_MEMORY_MB``, see :mod:`vitrep.limits`) the
    least recently used CPU models are evicted, before this one is built, until
    it fits; a model alone over the budget raises :class:`budget.MemoryBudgetError`.
    A cached model is returned at once, even while another model is being
    built; concurrent callers asking for the same new model build it once.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    key = (ref, str(dev))
    with _LOCK:
        lm = _MODELS.get(key)
        if lm is not None:
            _MODELS.move_to_end(key)
            return lm
        entry = _BUILDS.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:  # one build of this key at a time; other keys and cached lookups go on
            with _LOCK:
                lm = _MODELS.get(key)
                if lm is not None:  # built by the caller we waited for
                    _MODELS.move_to_end(key)
                    return lm
                if dev.type == "cpu":
                    _make_room(ref, key)  # before building: the evicted models' memory is free for this one
                budgeted = key in _PENDING
            try:
                if budgeted:
                    from . import budget

                    budget.release()  # what the evicted models (and earlier runs) leave goes back first
                module, identity = build_model(ref, progress)
                module.eval().requires_grad_(False).to(dev)
            finally:
                with _LOCK:
                    _PENDING.pop(key, None)
            with _LOCK:
                lm = _MODELS[key] = LoadedModel(ref, module, identity, dev)
            log.info("built %s on %s (%.0f MB)", ref.label(), dev, module_bytes(module) / 2 ** 20)
            return lm
    finally:
        with _LOCK:
            entry[1] -= 1
            if entry[1] == 0:
                _BUILDS.pop(key, None)


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, as shipped with torchvision (no download)."""
    from torchvision.models import ViT_B_32_Weights

    return list(ViT_B_32_Weights.IMAGENET1K_V1.meta["categories"])

