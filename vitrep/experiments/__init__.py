"""The experiment layer: each experiment is a frozen config, a ``run`` and a :class:`Report`.

An experiment module (``reconstruct``, ``sweep``, ``figure``, ``generate``,
``condition``, ``filters``, ``layernorm``) holds three parts, in the manner of
torchvision's builders:

- a frozen dataclass config of plain values (hashable: a cache key, and
  something Streamlit can hash);
- ``run(config, memo=None, executor=None, progress=None) -> Report``, which
  computes (through the memo) and never prints;
- the :class:`Report` it returns: the sentences a reader needs (in the
  order the command line prints them), rows, plot data, the files it wrote,
  and apart, the verdicts on the write-up's claims.

The command line (:mod:`vitrep.cli`) prints a Report; a dashboard page draws
the same Report with plotly.  Family knowledge stays in the model adapters,
so neither names a family's components.

The modules: :mod:`.reconstruct` (:class:`~.reconstruct.ReconstructRun`),
:mod:`.sweep` (:class:`~.sweep.SweepConfig`), :mod:`.figure`
(:class:`~.figure.FigureConfig`), :mod:`.generate`
(:class:`~.generate.GenerateRun`), :mod:`.condition`
(:class:`~.condition.ConditionRun`), :mod:`.filters`
(:class:`~.filters.FiltersConfig`), :mod:`.layernorm`
(:class:`~.layernorm.LayerNormConfig`) and :mod:`.ensemble`
(:class:`~.ensemble.EnsembleRun`).  A ``...Run`` wraps the engine's
own frozen config (:class:`vitrep.config.ReconstructConfig`,
:class:`vitrep.generate.GenerateConfig`, ...) with the image and the output
folder; :mod:`.inputs` reads images and removal sets for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    """What an experiment leaves: for a reader (``lines``), a table (``rows``), a plot (``plots``) and disk
    (``files``); ``data`` is the engine's own result (a :class:`vitrep.result.Result`, a grid, a summary);
    ``verdicts`` the sentences that judge the write-up's claims (also among ``lines``)."""

    kind: str  # reconstruct | sweep | figure | generate | condition | filters | layernorm | ensemble
    title: str
    lines: list[str] = field(default_factory=list)  # plain sentences, as the command line prints them
    rows: list[dict] = field(default_factory=list)  # one per panel, cell or run
    plots: dict[str, Any] = field(default_factory=dict)  # name -> plot data (curves, spectra)
    files: list[Path] = field(default_factory=list)
    data: Any = None
    verdicts: list[str] = field(default_factory=list)  # the sentences that judge a claim of the write-up

    def text(self) -> str:
        """The report as the command line prints it."""
        return "\n".join(self.lines)
