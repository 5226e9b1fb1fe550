"""The experiment layer: each experiment is a frozen config, a ``run`` and a :class:`Report`.

An experiment module (``reconstruct``, ``sweep``, ``figure``, ``generate``,
``condition``, ``filters``, ``layernorm``) holds three parts, in the manner of
torchvision's builders:

- a frozen dataclass config of plain values (hashable: a cache key, and
  something Streamlit can hash);
- ``run(config, memo=None, executor=None, progress=None) -> Report``, which
  computes (through the memo) and never prints;
- the :class:`Report` it returns: rows, the sentences a reader needs
  (verdicts first), plot data, and the files it wrote.

The command line (:mod:`vitrep.cli`) prints a Report; a dashboard page draws
the same Report with plotly.  Family knowledge stays in the model adapters,
so neither names a family's components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    """What an experiment leaves: for a reader (``lines``), a table (``rows``), a plot (``plots``) and disk
    (``files``); ``data`` is the engine's own result (a :class:`vitrep.result.Result`, a grid, a summary)."""

    kind: str  # reconstruct | sweep | figure | generate | condition | filters | layernorm
    title: str
    lines: list[str] = field(default_factory=list)  # plain sentences, verdicts first
    rows: list[dict] = field(default_factory=list)  # one per panel, cell or run
    plots: dict[str, Any] = field(default_factory=dict)  # name -> plot data (curves, spectra)
    files: list[Path] = field(default_factory=list)
    data: Any = None

    def text(self) -> str:
        """The report as the command line prints it."""
        return "\n".join(self.lines)
