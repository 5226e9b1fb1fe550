"""Default step sizes per model family and depth, read from a committed calibration table.

No single step size fits every model and layer: an untrained ViT-B/32 at
encoder 12 wants a much smaller plain-gradient step than at encoder 1, and a
Mixer without layer norms explodes at a step its intact twin needs.
``benchmarks/calibrate.py`` runs a grid of step sizes for each family at a
few depths on the bundled images and writes ``calibration.json`` beside this
file: per family, optimiser and depth band, the schedule that reached the
smallest ``m_g / m_r`` (the paper's criterion) without a blow-up.  The
registry reads it here; the README shows the table and how it was made.

A tap's *depth* is the number of blocks between the image and the tap:
0 for a stem (``stem``, ``embed``, ``conv1``), k for ``encoder-k`` /
``block-k`` / ResNet stage k, 1 for ``only-encoder-k`` (one block after the
stem), and depth + 1 for ``norm`` / ``logits`` / ``pool``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

TABLE = Path(__file__).resolve().parent / "calibration.json"

# Used only where the table has no row for a family (a family added after the last calibration).
FALLBACK = {"optimizer": "adam", "adam": (0.05, 0.005), "gd": (0.25, 0.02)}


@lru_cache(maxsize=1)
def table() -> dict:
    """The committed calibration (``{}`` if the file is missing)."""
    try:
        return json.loads(TABLE.read_text())
    except (OSError, ValueError):
        return {}


def tap_depth(tap: str, num_blocks: int) -> int:
    """Blocks between the image and ``tap`` (see the module docstring)."""
    if tap in ("stem", "embed", "conv1"):
        return 0
    if tap.startswith("only-"):
        return 1
    if tap in ("norm", "logits", "pool"):
        return num_blocks + 1
    m = re.search(r"(\d+)", tap)
    return int(m.group(1)) if m else num_blocks


def _band(rows: list[dict], depth: int) -> Optional[dict]:
    for row in rows:
        if row["depth"][0] <= depth <= row["depth"][1]:
            return row
    return rows[-1] if rows else None


def default_optimizer() -> str:
    return table().get("default_optimizer", FALLBACK["optimizer"])


def default_schedule(model, tap: str, optimizer: Optional[str] = None) -> tuple[str, float, float]:
    """``(optimizer, lr_start, lr_end)`` for ``model`` (a ModelRef) at ``tap``; ``optimizer`` None = the default."""
    opt = optimizer or default_optimizer()
    adapter = model.adapter
    rows = table().get("schedules", {}).get(adapter.calibration or adapter.name, {}).get(opt, [])
    row = _band(rows, adapter.tap_depth(tap, model.num_blocks))
    if row is None:
        lr0, lr1 = FALLBACK[opt]
        return opt, lr0, lr1
    return opt, float(row["lr_start"]), float(row["lr_end"])
