"""Weights: trained files through the standard caches, local checkpoints read safely, swaps, and the built model.

Trained weights go through the standard download-and-cache paths
(torch.hub's ``checkpoints/`` folder for torchvision, the Hugging Face cache
for timm).  Offline, a missing file raises :class:`WeightsUnavailable` naming
the file and the folder it belongs in.  Local checkpoints are read with
safetensors or ``torch.load(weights_only=True)``; never an unrestricted
unpickle.  :func:`build_model` makes a fresh module for a
:class:`vitrep.models.registry.ModelRef` (its weights, then its swaps) and
:func:`weights_identity` says what the weights are, for memo keys, without
building anything.  :class:`LoadedModel` is a built model on a device, as
the pool (:mod:`vitrep.models.pool`) shares it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, WeightsUnavailable
from .families import ModelSpec, TrainedSource
from .registry import ModelRef


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
    from ..limits import public_mode

    src = spec.trained
    if public_mode():  # a stranger is told what is missing, never where this server keeps its files
        return (f"Trained weights for {spec.name} need the file {src.filename}, which this public server does not "
                f"have and could not download.")
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


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, as shipped with torchvision (no download)."""
    from torchvision.models import ViT_B_32_Weights

    return list(ViT_B_32_Weights.IMAGENET1K_V1.meta["categories"])

