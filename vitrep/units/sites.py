"""The activations a set of objectives reads, from one forward pass that shares every common prefix.

A tap site runs the tap's path (:func:`vitrep.models.taps.tap_path`, the
image normalised first).  A unit site in block k runs the path to block k's
output, its last operation (block k itself) on the plain modules with the
adapter's :class:`~vitrep.models.families.base.Hook` s attached for that one
call; the blocks before it keep the packed CPU path.  Equal prefixes run
once: a channel at encoder 6 and an MLP unit of block 6 cost one pass
through blocks 1-6.  Unit sites go first, so a block whose units are read
runs with its hooks even when a deeper tap also passes through it.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..models.surgery import Surgery
from ..models.taps import tap_path
from .objectives import TapSite, UnitSite


def _run(x: torch.Tensor, ops, done: dict) -> torch.Tensor:
    keys: tuple = ()
    for op in ops:
        keys = keys + (op.key,)
        if keys not in done:
            done[keys] = op.fn(x)
        x = done[keys]
    return x


def _block_tap(lm, block: int) -> str:
    return f"{lm.adapter.unit}-{block}"


def _with_hooks(lm, block: int, kinds: list[str], fn, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Run block ``block``'s operation ``fn`` on ``x`` with the hooks of ``kinds`` attached; what each read."""
    got: dict[str, torch.Tensor] = {}
    handles = []
    for kind in kinds:
        hook = lm.adapter.unit_hook(lm.module, block, kind)

        def keep(t, kind=kind, hook=hook):
            got[kind] = hook.read(t)

        if hook.when == "input":
            handles.append(hook.module.register_forward_pre_hook(lambda m, args, keep=keep: keep(args[0])))
        else:
            handles.append(hook.module.register_forward_hook(lambda m, args, out, keep=keep: keep(out)))
    try:
        out = fn(x)
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in kinds if k not in got]
    if missing:  # the surgery removed the line the units live on
        from ..errors import ConfigError

        raise ConfigError(f"Block {block}'s {missing[0]} units are removed by the surgery; nothing of them runs.")
    return out, got


def check_sites(lm, sites: Iterable) -> None:
    """One sentence (ConfigError) for a unit site the model does not have, before any step."""
    for s in sites:
        if isinstance(s, UnitSite):
            lm.adapter.unit_hook(lm.module, s.block, s.kind)


def activations(lm, x: torch.Tensor, sites: Iterable, surgery: Surgery = Surgery(), pos_embed: bool = True) -> dict:
    """``{site: tensor}`` for the batch ``x`` (raw pixels in [0, 1]); taps through the prefix-sharing walk."""
    sites = list(sites)
    done: dict[tuple, torch.Tensor] = {}
    out: dict = {}
    by_block: dict[int, list[str]] = {}
    for s in sites:
        if isinstance(s, UnitSite):
            by_block.setdefault(s.block, []).append(s.kind)
    for block, kinds in sorted(by_block.items()):
        ops = tap_path(lm, _block_tap(lm, block), surgery, pos_embed, normalize=True)
        plain = tap_path(lm, _block_tap(lm, block), surgery, pos_embed, normalize=True, fast=False)[-1]
        before = _run(x, ops[:-1], done)
        keys = tuple(op.key for op in ops)
        result, got = _with_hooks(lm, block, kinds, plain.fn, before)
        done.setdefault(keys, result)
        for kind, t in got.items():
            out[UnitSite(block, kind)] = t
    for s in sites:
        if isinstance(s, TapSite):
            out[s] = _run(x, tap_path(lm, s.tap, surgery, pos_embed, normalize=True), done)
    return out
