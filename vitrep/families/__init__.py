"""Model families: one adapter per kind of network (see :mod:`vitrep.families.base`).

Adding a family is one adapter file that defines its :class:`Family`
subclass (with its model specs) plus one entry in ``FAMILIES`` below.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Family, ModelSpec, TrainedSource
from .deit import DeiT
from .mixer import Mixer
from .resnet import ResNet
from .vit import FeedForwardViT, ViT

# The registry, in the order the model menus list them.
FAMILIES: dict[str, Family] = {f.name: f for f in (ViT(), ResNet(), Mixer(), FeedForwardViT(), DeiT())}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"There is no model family {name!r}; the families are {', '.join(FAMILIES)}.") from None


__all__ = ["FAMILIES", "Family", "ModelSpec", "TrainedSource", "get_family"]
