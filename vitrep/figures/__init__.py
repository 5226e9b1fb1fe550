"""The paper's figures: a catalogue of panels, the paper's claims with their checks, and the runner.

- :mod:`.catalogue`: each figure's panels, budgets and cost (``FIGURES``, ``get_figure``);
- :mod:`.checks`: each figure's claims, the paper's words quoted beside the test of them;
- :mod:`.verdicts`: HELD / NOT HELD / NOT CHECKED, when a panel moved, the words that set thresholds;
- :mod:`.panels`: which panels a run shows and each one's engine config (:func:`figure_cells`);
- :mod:`.run`: :func:`run_figure` (``distances.json``, ``contact_sheet.png``), one verdict per claim and optimizer.
"""

from .catalogue import BUDGETS, FIGURES, Figure, Panel, check_budget, get_figure, quick_steps
from .gallery import local_only
from .panels import OPTIMIZER_CHOICES, figure_cells, optimizers_of, panel_config
from .run import run_figure, verdict_counts
from .verdicts import HELD, NOT_CHECKED, NOT_HELD, Claim, Verdict

__all__ = ["BUDGETS", "FIGURES", "HELD", "NOT_CHECKED", "NOT_HELD", "OPTIMIZER_CHOICES", "Claim", "Figure", "Panel",
           "Verdict", "check_budget", "figure_cells", "get_figure", "local_only", "optimizers_of", "panel_config", "quick_steps",
           "run_figure", "verdict_counts"]
