"""Typed checks of user-given values: each returns the value or raises a one-sentence ConfigError naming it.

Configs come from JSON files (``--config``, a result.json), the command line
and the dashboard; a dataclass does not check the types it is given.  These
checks do, strictly: a bool is a real bool (not ``"no"``), a whole number a
real int (not ``true``, ``2.5`` or ``1e309``) within bounds, a number finite
and within bounds, a name one of the known ones, a list of names a list (a
string is not split into its letters).  Imports nothing from vitrep but
:mod:`vitrep.errors`.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterable, Optional

from .errors import ConfigError


def show(v: Any) -> str:
    """A short, one-line rendering of a user's value for an error sentence."""
    try:
        text = repr(v)
    except ValueError:  # an int beyond Python's digit limit for str()
        return "a number with thousands of digits"
    if isinstance(v, (dict, list, tuple)) and len(text) > 40:
        return f"a {type(v).__name__} of {len(v)} item(s)"
    return text if len(text) <= 40 else text[:37] + "..."


def _fmt(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def whole(v: Any, name: str, lo: int, hi: int) -> int:
    """A real int (not a bool, not a float) in ``[lo, hi]``."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{name} must be a whole number from {_fmt(lo)} to {_fmt(hi)}, not {show(v)}.")
    if not lo <= v <= hi:
        raise ConfigError(f"{name} must be a whole number from {_fmt(lo)} to {_fmt(hi)}, not {show(v)}.")
    return v


def number(v: Any, name: str, lo: float, hi: float, optional: bool = False) -> Optional[float]:
    """A finite int or float (not a bool) in ``[lo, hi]``, as a float; ``None`` where ``optional``."""
    if v is None and optional:
        return None
    span = f">= {_fmt(lo)}" if hi >= sys.float_info.max else f"from {_fmt(lo)} to {_fmt(hi)}"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{name} must be a number {span}, not {show(v)}.")
    try:
        f = float(v)
    except OverflowError:  # an int too large for a float
        f = math.inf
    if not math.isfinite(f) or not lo <= f <= hi:
        raise ConfigError(f"{name} must be a finite number {span}, not {show(v)}.")
    return f


def whole_in(lo: int, hi: int):
    """A checker ``(value, name)`` of :func:`whole` in ``[lo, hi]``: a config's table of field checks holds these."""
    return lambda v, name: whole(v, name, lo, hi)


def number_in(lo: float, hi: float, optional: bool = False):
    """A checker ``(value, name)`` of :func:`number` in ``[lo, hi]`` (``None`` allowed where ``optional``)."""
    return lambda v, name: number(v, name, lo, hi, optional)


def flag(v: Any, name: str) -> bool:
    """A real bool: ``true`` or ``false`` (not ``"no"``, not ``0``)."""
    if not isinstance(v, bool):
        raise ConfigError(f"{name} must be true or false, not {show(v)}.")
    return v


def text(v: Any, name: str, choices: Optional[Iterable[str]] = None, max_len: int = 4096) -> str:
    """A string (one of ``choices`` when given), at most ``max_len`` characters."""
    choices = tuple(choices) if choices is not None else None
    if not isinstance(v, str) or len(v) > max_len or "\x00" in v:
        what = f"one of {', '.join(choices)}" if choices else "a text"
        raise ConfigError(f"{name} must be {what}, not {show(v)}.")
    if choices is not None and v not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {show(v)}.")
    return v


def names(v: Any, name: str, max_items: int = 256) -> tuple[str, ...]:
    """A list of short names (a JSON list of strings); a bare string is refused, not split into letters."""
    if not isinstance(v, (list, tuple)) or len(v) > max_items:
        raise ConfigError(f"{name} must be a list of names such as [\"stem\"], not {show(v)}.")
    for item in v:
        if not isinstance(item, str) or not item or len(item) > 200:
            raise ConfigError(f"{name} must be a list of names such as [\"stem\"], and {show(item)} is not a name.")
    return tuple(v)


def wholes(v: Any, name: str, lo: int, hi: int, max_items: int = 4096) -> tuple[int, ...]:
    """A list of whole numbers in ``[lo, hi]``."""
    if not isinstance(v, (list, tuple)) or len(v) > max_items:
        raise ConfigError(f"{name} must be a list of whole numbers from {_fmt(lo)} to {_fmt(hi)}, not {show(v)}.")
    return tuple(whole(x, f"each of {name}", lo, hi) for x in v)


def mapping(v: Any, name: str, known: Optional[Iterable[str]] = None) -> dict:
    """A JSON object whose keys are all ``known`` (when given)."""
    if not isinstance(v, dict):
        raise ConfigError(f"{name} must be an object with named fields, not {show(v)}.")
    if known is not None:
        unknown = sorted(str(k) for k in v if k not in set(known))
        if unknown:
            raise ConfigError(f"{name} has unknown field(s) {', '.join(show(k) for k in unknown[:5])}"
                              f"{' and more' if len(unknown) > 5 else ''}.")
    return v
