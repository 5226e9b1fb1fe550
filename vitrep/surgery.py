"""Component removal inside blocks, as pure functions of the unmodified block.

Removal never edits a model: each block kind has a forward here that takes the
set of removed components and computes the block's formula with those lines
deleted.  The shared (cached) model is therefore never patched, hooked or
copied; removing nothing calls the block's own ``forward``.

torchvision's ViT ``EncoderBlock`` (DESIGN.md section 2)::

    x = ln_1(in)          # ln_1
    x = attn(x)           # attention
    x = x + in            # residual_1
    y = ln_2(x)           # ln_2
    y = mlp(y)            # mlp
    out = x + y           # residual_2

Removing a component deletes its line, so the value flows through unchanged:
without ``attention`` the first half is ``ln_1(in) + in``; without
``residual_1`` it is ``attn(ln_1(in))``; without ``mlp`` the output is
``x + ln_2(x)``; without ``residual_2`` it is ``mlp(ln_2(x))``.  "Attention
only" in the page's sense is ``--remove mlp,ln_2,residual_1,residual_2``.

timm's MLP-Mixer block has the same six lines with ``norm_1``,
``token_mixing``, ``residual_1``, ``norm_2``, ``channel_mixing``,
``residual_2``; the attention-free ViT (``ffvit``) has ``ln_1``, ``mlp``,
``residual_1``, ``ln_2``, ``token_mlp``, ``residual_2``; a ResNet bottleneck
has ``skip`` (its residual connection; the block is then
``relu(bn3(conv3(...)))``).  Names from one family are accepted for another
where the meaning is the same (``attention`` -> token mixing, ``mlp`` ->
channel mixing, ``ln_1`` -> ``norm_1``, ``residual`` -> ``skip``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import fastops
from .errors import ConfigError

COMPONENTS = {
    "vit": ("ln_1", "attention", "residual_1", "ln_2", "mlp", "residual_2"),
    "mixer": ("norm_1", "token_mixing", "residual_1", "norm_2", "channel_mixing", "residual_2"),
    "ffvit": ("ln_1", "mlp", "residual_1", "ln_2", "token_mlp", "residual_2"),
    "resnet": ("skip",),
}
ALIASES = {
    "mixer": {"ln_1": "norm_1", "ln_2": "norm_2", "attention": "token_mixing", "mlp": "channel_mixing"},
    "ffvit": {"attention": "token_mlp"},
    "resnet": {"residual": "skip", "residual_1": "skip", "residual_2": "skip"},
    "vit": {},
}


@dataclass(frozen=True)
class Surgery:
    """Which components to remove, and in which blocks (1-based; ``None`` = every block)."""

    remove: tuple[str, ...] = ()
    blocks: Optional[tuple[int, ...]] = None

    def removed_in(self, block: int) -> frozenset:
        if not self.remove or (self.blocks is not None and block not in self.blocks):
            return frozenset()
        return frozenset(self.remove)

    def describe(self) -> str:
        if not self.remove:
            return "intact"
        where = "every block" if self.blocks is None else "blocks " + format_blocks(self.blocks)
        return f"without {', '.join(self.remove)} in {where}"


def parse_blocks(text: str | None) -> Optional[tuple[int, ...]]:
    """``"1-4,7"`` -> ``(1, 2, 3, 4, 7)``; empty or ``"all"`` -> ``None`` (every block)."""
    if text is None or str(text).strip().lower() in ("", "all"):
        return None
    out: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                if a > b:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ConfigError(f"Blocks {text!r} are not a list like '1-4,7' of block numbers from 1.") from None
    if min(out) < 1:
        raise ConfigError(f"Blocks {text!r} must be numbered from 1.")
    return tuple(sorted(out))


def format_blocks(blocks: Iterable[int]) -> str:
    blocks = sorted(blocks)
    parts, start = [], None
    for i, b in enumerate(blocks):
        if start is None:
            start = b
        if i + 1 == len(blocks) or blocks[i + 1] != b + 1:
            parts.append(str(start) if start == b else f"{start}-{b}")
            start = None
    return ",".join(parts)


def make_surgery(family: str, remove: Iterable[str] | str = (), blocks=None, depth: int | None = None) -> Surgery:
    """Validate component names for a model family and build a :class:`Surgery`."""
    if isinstance(remove, str):
        remove = [r for r in remove.replace(" ", "").split(",") if r]
    names = COMPONENTS[family]
    canon = []
    for r in remove:
        c = ALIASES[family].get(r.lower(), r.lower())
        if c not in names:
            raise ConfigError(f"{r!r} is not a removable component of this model; choose from {', '.join(names)}.")
        canon.append(c)
    if isinstance(blocks, str) or blocks is None:
        blocks = parse_blocks(blocks)
    else:
        blocks = tuple(sorted(set(int(b) for b in blocks))) or None
    if blocks is not None and depth is not None and max(blocks) > depth:
        raise ConfigError(f"This model has {depth} blocks, so block {max(blocks)} does not exist.")
    order = {n: i for i, n in enumerate(names)}
    return Surgery(tuple(sorted(set(canon), key=order.get)), blocks if canon else None)


# --- block forwards -------------------------------------------------------------------------------

def _plain(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def vit_block(block: nn.Module, x: torch.Tensor, removed: frozenset, fast: bool = False) -> torch.Tensor:
    """torchvision ``EncoderBlock`` with the ``removed`` lines deleted.

    ``fast`` computes the same formula with :mod:`vitrep.fastops` (packed
    linear layers on CPU); otherwise removing nothing calls the block itself.
    """
    if not removed and not fast:
        return block(x)
    call = fastops.call if fast else _plain
    inp = x  # (B, 1+N, D)
    h = x if "ln_1" in removed else block.ln_1(x)
    if "attention" not in removed:
        h = fastops.attention(block.self_attention, h) if fast else block.self_attention(h, h, h, need_weights=False)[0]
        h = block.dropout(h)
    x = h if "residual_1" in removed else h + inp
    y = x if "ln_2" in removed else block.ln_2(x)
    if "mlp" not in removed:
        y = call(block.mlp, y)
    return y if "residual_2" in removed else x + y


def mixer_block(block: nn.Module, x: torch.Tensor, removed: frozenset, fast: bool = False) -> torch.Tensor:
    """timm ``MixerBlock`` with the ``removed`` lines deleted (``fast``: as in :func:`vit_block`)."""
    if not removed and not fast:
        return block(x)
    call = fastops.call if fast else _plain
    inp = x  # (B, N, D)
    h = x if "norm_1" in removed else block.norm1(x)
    if "token_mixing" not in removed:
        h = call(block.mlp_tokens, h.transpose(1, 2)).transpose(1, 2)
    x = h if "residual_1" in removed else inp + h
    y = x if "norm_2" in removed else block.norm2(x)
    if "channel_mixing" not in removed:
        y = call(block.mlp_channels, y)
    return y if "residual_2" in removed else x + y


def ffvit_block(block: nn.Module, x: torch.Tensor, removed: frozenset, fast: bool = False) -> torch.Tensor:
    return block(x, removed, fastops.call if fast else None)


def resnet_block(block: nn.Module, x: torch.Tensor, removed: frozenset, fast: bool = False) -> torch.Tensor:
    """torchvision ``Bottleneck``; without ``skip`` the identity/downsample branch is not added."""
    if not removed:
        return block(x)
    out = F.relu(block.bn1(block.conv1(x)))
    out = F.relu(block.bn2(block.conv2(out)))
    out = block.bn3(block.conv3(out))
    return F.relu(out)


BLOCK_FORWARD = {"vit": vit_block, "mixer": mixer_block, "ffvit": ffvit_block, "resnet": resnet_block}
