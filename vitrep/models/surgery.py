"""Component removal inside blocks, as pure functions of the unmodified block.

Removal never edits a model: each family's adapter (:mod:`vitrep.models.families`)
has a block forward that takes the set of removed components and computes
the block's formula with those lines deleted.  The shared (cached) model is
therefore never patched, hooked or copied; removing nothing calls the block's
own ``forward``.  This module holds what is common to every family: which
components to remove in which blocks (:class:`Surgery`), and reading a
user's names for them against the adapter's list (:func:`make_surgery`).
Names from one family are accepted for another where the meaning is the same
(``attention`` -> a Mixer's token mixing, ``residual`` -> a ResNet's
``skip``): each adapter's ``component_aliases``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from .. import fields as F
from ..errors import ConfigError

MAX_BLOCK = 4096  # no model has more blocks: a larger number is a mistake, not a range to build


@dataclass(frozen=True)
class Surgery:
    """Which components to remove, and in which blocks (1-based; ``None`` = every block)."""

    remove: tuple[str, ...] = ()
    blocks: Optional[tuple[int, ...]] = None

    def removed_in(self, block: int) -> frozenset:
        if not self.remove or (self.blocks is not None and block not in self.blocks):
            return frozenset()
        return frozenset(self.remove)

    def to_dict(self) -> dict:
        return {"remove": list(self.remove), "blocks": None if self.blocks is None else list(self.blocks)}

    @classmethod
    def from_dict(cls, value) -> "Surgery":
        """A surgery from JSON values (``to_dict``'s, or absent), each checked: a bad one is one sentence."""
        s = F.mapping(value or {}, "surgery", known=("remove", "blocks"))
        blocks = s.get("blocks")
        return cls(F.names(s.get("remove", ()), "surgery.remove"),
                   None if blocks is None else F.wholes(blocks, "surgery.blocks", 1, MAX_BLOCK))

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
            else:
                a = b = int(part)
            if b > MAX_BLOCK:
                raise ConfigError(f"Blocks {str(text)[:40]!r} go beyond block {MAX_BLOCK:,}; no model has that many.")
            out.update(range(a, b + 1))
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


def make_surgery(family, remove: Iterable[str] | str = (), blocks=None, depth: int | None = None) -> Surgery:
    """Validate component names for a model family (its adapter, or its name) and build a :class:`Surgery`."""
    from .families import Family, get_family

    adapter = family if isinstance(family, Family) else get_family(family)
    if isinstance(remove, str):
        remove = [r for r in remove.replace(" ", "").split(",") if r]
    names = adapter.components
    canon = []
    for r in remove:
        if not isinstance(r, str):
            raise ConfigError(f"Components to remove are names such as 'attention', not {str(r)[:40]}.")
        c = adapter.canonical_component(r)
        if c not in names:
            raise ConfigError(f"{r!r} is not a removable component of this model; choose from {', '.join(names)}.")
        canon.append(c)
    if isinstance(blocks, str) or blocks is None:
        blocks = parse_blocks(blocks)
    else:
        if isinstance(blocks, (int, float)) or not all(isinstance(b, int) and not isinstance(b, bool)
                                                         and 1 <= b <= MAX_BLOCK for b in blocks):
            raise ConfigError(f"Blocks must be block numbers from 1, such as [1, 2, 3], not {str(blocks)[:40]}.")
        blocks = tuple(sorted(set(blocks))) or None
    if blocks is not None and depth is not None and max(blocks) > depth:
        raise ConfigError(f"This model has {depth} blocks, so block {max(blocks)} does not exist.")
    order = {n: i for i, n in enumerate(names)}
    return Surgery(tuple(sorted(set(canon), key=order.get)), blocks if canon else None)
