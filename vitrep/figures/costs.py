"""What a figure costs on this machine: seconds per block and step of each model, from its own recent runs.

After a figure run, :func:`record` divides each model's computed seconds
(each batch counted once; memo hits not at all) by the block-steps its
panels ran (:func:`vitrep.figures.catalogue.panel_units`) and keeps the
latest figure's number per model in ``figure_costs.json`` beside the memo.
:func:`measured` reads them back, so an expected time is this machine's own,
falling back to the reference table where a model has not run here yet.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from .catalogue import panel_units

FILE = "figure_costs.json"


def measured(directory: Optional[Path]) -> dict[str, float]:
    """``{model: seconds per block and step}`` measured on this machine ({} when nothing is recorded)."""
    try:
        doc = json.loads((Path(directory) / FILE).read_text())
        return {m: float(v["seconds_per_block_step"]) for m, v in doc.items() if v.get("seconds_per_block_step")}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return {}


def record(directory: Optional[Path], done: list) -> dict[str, float]:
    """Record ``done`` (``(panel, result)`` pairs of one figure run) per model; returns what was recorded."""
    if directory is None:
        return {}
    seconds: dict[str, float] = {}
    units: dict[str, float] = {}
    batches: set = set()
    for p, r in done:
        if p.kind != "reconstruct" or r.from_cache or r.steps <= 0:
            continue
        units[p.model] = units.get(p.model, 0.0) + r.steps * panel_units(p)
        batch = (p.model, r.config.optimizer, round(r.seconds, 6))  # the rows of one batch share its seconds
        if batch not in batches:
            batches.add(batch)
            seconds[p.model] = seconds.get(p.model, 0.0) + r.seconds
    got = {m: seconds[m] / units[m] for m in seconds if units.get(m)}
    if got:
        path = Path(directory) / FILE
        try:
            doc = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            doc = {}
        stamp = time.strftime("%Y-%m-%d %H:%M")
        doc.update({m: {"seconds_per_block_step": round(v, 6), "when": stamp} for m, v in got.items()})
        try:
            path.write_text(json.dumps(doc, indent=1) + "\n")
        except OSError:
            return {}
    return got
