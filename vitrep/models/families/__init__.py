"""Model families: one adapter per kind of network (see :mod:`vitrep.models.families.base`).

Adding a family is one adapter file that defines its :class:`Family`
subclass (with its model specs) plus one entry in ``FAMILIES`` below.
"""

from __future__ import annotations

from .base import Family, ModelSpec, TrainedSource, get_family, register
from .deit import DeiT
from .mixer import Mixer
from .resnet import ResNet
from .vit import FeedForwardViT, ViT

# The registry, in the order the model menus list them.
FAMILIES: dict[str, Family] = register(ViT(), ResNet(), Mixer(), FeedForwardViT(), DeiT())


__all__ = ["FAMILIES", "Family", "ModelSpec", "TrainedSource", "get_family"]
