"""The two metrics a picture claim is read by: the input distance (L2) and structure (SSIM).

:class:`Metric` compares panels the same way under both (:meth:`Metric.worse`,
:meth:`Metric.better`); which claim reads which is in
:mod:`vitrep.figures.checks` (its ``metrics``), decided from the quotes
(docs/findings.md).
"""

from __future__ import annotations

from dataclasses import dataclass


class NotChecked(Exception):
    """Raised by a judge where the run cannot decide the claim; the message is the reason."""


@dataclass(frozen=True)
class Metric:
    """How close a reconstruction ends to its image, by one measure.

    ``l2``: the input distance ``||a - a_g||`` (lower is closer); ``ssim``:
    the structural similarity of ``a_g`` against ``a`` (higher is clearer).
    Comparisons are relative and read the same for both: :meth:`worse` is how
    much worse one panel ends than another, as a fraction of the other's value
    (``d_a / d_b - 1``; ``1 - s_a / s_b``); :meth:`better` says the worse
    panel's value is at least ``by`` away from the better one's, as a fraction
    of the larger value (``d_a <= (1 - by) d_b``; ``s_b <= (1 - by) s_a``).
    """

    key: str  # the row's ``final`` key
    short: str  # L2 | SSIM
    name: str  # what a verdict line calls it

    @property
    def lower_is_better(self) -> bool:
        return self.key == "input_distance"

    def of(self, row: dict) -> float:
        return float(row["final"][self.key])

    def _positive(self, row: dict) -> float:
        v = self.of(row)
        if not self.lower_is_better and v <= 0:
            raise NotChecked(f"a panel it compares against ends with SSIM {v:.3g}: no structure to compare with")
        return v

    def worse(self, a: dict, b: dict) -> float:
        """How much worse panel ``a`` ends than panel ``b`` (0: the same; negative: better)."""
        if self.lower_is_better:
            return self.of(a) / max(self.of(b), 1e-30) - 1
        return 1 - self.of(a) / self._positive(b)

    def better(self, a: dict, b: dict, by: float) -> bool:
        """Panel ``a`` ends at least ``by`` (a fraction) better than panel ``b``."""
        if self.lower_is_better:
            return self.of(a) <= (1 - by) * self.of(b)
        return self.of(b) <= (1 - by) * self._positive(a)


L2 = Metric("input_distance", "L2", "distance (L2)")
SSIM = Metric("ssim", "SSIM", "structure (SSIM)")
METRICS = {"l2": L2, "ssim": SSIM}
# Which metric a claim's words name, its own first: decided from the quotes alone, before any run
# (docs/findings.md, "Which metric a claim is read by").
STRUCTURE_FIRST = ("ssim", "l2")  # clarity, quality, resolution, highlighting: what an eye judges
DISTANCE_FIRST = ("l2", "ssim")  # distance, error, accuracy, information
