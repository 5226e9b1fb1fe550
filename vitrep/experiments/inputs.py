"""What experiments take from a person: an image (a file, a bundled sample, a PIL image or a tensor) and removal
sets (``'none;attention;ln_1,ln_2'``), read in one place for every experiment and the command line."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError


def model_image(image: Any, size: int, resize: str = "crop") -> torch.Tensor:
    """``image`` as the model takes it, ``(1, 3, size, size)``: a file or sample name is loaded and fitted, a PIL
    image fitted; a tensor is taken as already prepared (as :func:`vitrep.images.prepare` made it)."""
    from ..images import image_source, prepare

    if isinstance(image, torch.Tensor):
        return image if image.dim() == 4 else image.unsqueeze(0)
    if isinstance(image, str):
        if not image.strip():
            raise ConfigError("Give an image: a file, or a bundled sample (cat, coffee, astronaut, rocket).")
        image = image_source(image)
    return prepare(image, size, resize)


def removal_sets(text: str) -> list[str]:
    """Removal sets separated by ';' -> one label each: ``'none'`` (also for an empty set) or the components
    joined by ',' without spaces, e.g. ``'none; attention;mlp, ln_2'`` -> ``['none', 'attention', 'mlp,ln_2']``."""
    out = []
    for part in str(text).split(";"):
        names = [c.strip() for c in part.split(",") if c.strip()]
        out.append("none" if not names or [n.lower() for n in names] == ["none"] else ",".join(names))
    return out


def removed(label: str) -> list[str]:
    """The components a removal set's label names (none for ``'none'``)."""
    return [] if label.strip().lower() in ("none", "") else [c.strip() for c in label.split(",") if c.strip()]
