"""Any timm model by name (``timm:NAME``): which adapter serves it, its spec, and the search of timm's names.

``timm:vit_small_patch16_224.dino``, ``timm:vit_base_patch16_clip_224.openai``,
``timm:eva02_tiny_patch14_224.mim_in22k``, ``timm:resmlp_12_224``,
``timm:convnext_tiny``, ...: :func:`timm_spec` builds the architecture on
torch's ``meta`` device (shapes only) to learn its class, depth and its
``pretrained_cfg`` (input size, normalisation, Hugging Face repository), and
registers one adapter instance for that model, which knows its layout
(blocks per stage).  Supported classes (:data:`SUPPORTED`), one adapter each:

- ``VisionTransformer`` (DeiT, DINO/DINOv2, CLIP image towers, registers,
  layer scale, pre-norm) and ``Eva`` (rotary position embedding inside
  attention): :mod:`.timm_vit`, taps ``stem``, ``embed``, ``encoder-k``,
  ``only-encoder-k``, ``norm``, ``logits``; the ViT's six components, the
  layer scales going with their branch;
- ``MlpMixer`` with Mixer or ResMLP blocks: the Mixer's six components
  (:mod:`.mixer`); gMLP blocks, whose one residual branch holds the token
  mixing inside its gated MLP: ``norm_1``, ``gated_mlp``, ``residual_1``
  (:mod:`.timm_mixers`);
- ``ResNet`` and ``ConvNeXt``: stages of residual blocks (:mod:`.timm_conv`).

A component a block does not have is refused in one sentence.  Trained
weights come through timm's own Hugging Face repository for the name (the
standard cache), or a local file (``--weights FILE``).  A timm model may
also be listed under a short name (``deit_tiny``: :func:`.timm_base.alias`).
"""

from __future__ import annotations

import functools

import torch

from ...errors import ConfigError
from .base import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, TrainedSource, register_model_adapter
from .timm_base import build
from .timm_conv import TimmConvNeXt, TimmResNet
from .timm_mixers import GMLP, TimmMixer
from .timm_vit import TimmEva, TimmViT

PREFIX = "timm:"
SUPPORTED = ("VisionTransformer", "Eva", "MlpMixer", "ResNet", "ConvNeXt")


def is_timm(name: str) -> bool:
    return str(name).startswith(PREFIX)


@functools.lru_cache(maxsize=None)
def timm_spec(name: str) -> ModelSpec:
    """The spec of ``timm:NAME`` (built once per process), or one sentence on why it cannot be used."""
    import timm

    arch = name[len(PREFIX):]
    if not arch or not timm.is_model(arch):
        raise ConfigError(f"timm has no model called {arch!r}; `python -m vitrep models --timm TEXT` lists matches.")
    try:
        with torch.device("meta"):
            m = timm.create_model(arch, pretrained=False)
    except Exception as e:  # noqa: BLE001 - any build failure of a third-party model is the user's one sentence
        raise ConfigError(f"timm could not build {arch}: {str(e).splitlines()[0]}.") from None
    kind = type(m).__name__
    adapter_cls = _ADAPTERS.get(kind)
    if adapter_cls is None:
        raise ConfigError(f"{arch} is a timm {kind}, which vitrep cannot take apart; the supported timm classes are "
                          f"{', '.join(SUPPORTED)}.")
    if kind == "MlpMixer" and type(m.blocks[0]).__name__ == "SpatialGatingBlock":
        adapter_cls = GMLP
    adapter = adapter_cls.for_model(f"{PREFIX}{arch}", m)
    cfg = m.pretrained_cfg or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    hub = cfg.get("hf_hub_id")
    trained = TrainedSource("timm", hub) if hub and _has_tag(arch) else None
    spec = ModelSpec(name, adapter.name, size, f"timm {arch} ({kind}, untrained unless trained weights are asked for)",
                     functools.partial(build, arch), mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
                     std=tuple(cfg.get("std", IMAGENET_STD)), trained=trained, depth=adapter.depth(m),
                     label=arch)
    adapter.specs = (spec,)
    register_model_adapter(adapter)
    return spec


def _has_tag(arch: str) -> bool:
    """timm's default weights exist for ``arch`` (with or without a tag)."""
    import timm

    return bool(timm.list_pretrained(arch.split(".")[0] + "*")) or "." in arch


def search(text: str, limit: int = 50) -> list[str]:
    """timm model names containing ``text`` (with their weight tags), prefixed ``timm:``."""
    import timm

    pattern = f"*{text.strip()}*" if text.strip() else "*"
    return [PREFIX + n for n in timm.list_models(pattern, pretrained=True)][:limit]


_ADAPTERS = {"VisionTransformer": TimmViT, "Eva": TimmEva, "MlpMixer": TimmMixer, "ResNet": TimmResNet,
             "ConvNeXt": TimmConvNeXt}
__all__ = ["PREFIX", "SUPPORTED", "is_timm", "search", "timm_spec"]
