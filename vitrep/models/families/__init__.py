"""Model families: one adapter per kind of network (see :mod:`vitrep.models.families.base`).

Adding a family is one adapter file that defines its :class:`Family`
subclass (with its model specs) plus one entry in ``FAMILIES`` below.  A
timm model is served by the adapter of its timm class
(:mod:`.timm_models`); listed under a short name it is a family too
(``deit``: :data:`.timm_vit.DEIT`).
"""

from __future__ import annotations

from .base import Family, ModelSpec, TrainedSource, get_family, register
from .mixer import Mixer
from .resnet import ResNet
from .timm_vit import DEIT
from .vit import FeedForwardViT, ViT

# The registry, in the order the model menus list them.
FAMILIES: dict[str, Family] = register(ViT(), ResNet(), Mixer(), FeedForwardViT(), DEIT)


__all__ = ["FAMILIES", "Family", "ModelSpec", "TrainedSource", "get_family"]
