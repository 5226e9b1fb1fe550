"""How a figure's claim is judged on a run's numbers: three verdicts, and the words that set the thresholds.

A :class:`Claim` is the paper's own words (``quote``), what is measured to
test them (``test``), the panels it reads and a ``judge`` over those panels'
rows (a row is a panel's entry of ``distances.json``).  :func:`judge_claim`
gives one :class:`Verdict` per claim and optimizer:

- **NOT CHECKED** first, wherever the run cannot test the claim: the quick
  budget (a pipeline check), a panel it reads is not in the run (left out of
  the budget), a panel did not move
  from its starting noise (:func:`moved`), the claim is about minimising m
  under plain gradient descent and the run used Adam, or the judge itself
  says the run cannot decide (a model's weights are missing, the long panel
  ran no longer than the short one);
- then **HELD** or **NOT HELD**, by the judge's test of the quote.

Thresholds are relative to the run (ratios of input distances, shares of a
decline, m_g / m_r), and each is named after the paper's word it stands for
(:data:`WORDS`), so a check reads as its quote and no number is chosen per
figure.  docs/findings.md lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

HELD, NOT_HELD, NOT_CHECKED = "HELD", "NOT HELD", "NOT CHECKED"

# The paper's words as thresholds (docs/findings.md); a distance is the input distance ||a - a_g||.
CLEARLY = 0.05  # "a decrease", "reduce", "more accurate", "better": at least 5% apart
SUBSTANTIALLY = 0.20  # "substantially", "greatly", "large": at least 20% apart
NO_DIFFERENCE = 0.05  # "no noticeable difference": within 5%
ABOUT_THE_SAME = 0.10  # "approximately the same": within 10%
MOST = 1 / 2  # "most (of the decline)": more than half
VAST_MAJORITY = 2 / 3  # "the vast majority (of the decline)": at least two thirds
TO_THE_ORIGIN = 0.1  # "heads towards the origin": a tenth of its start or less
MUCH_HARDER = 1 / 2  # "much more difficult": at most half the share that succeeds
WORDS = {"clearly": CLEARLY, "substantially": SUBSTANTIALLY, "no noticeable difference": NO_DIFFERENCE,
         "approximately the same": ABOUT_THE_SAME, "most": MOST, "the vast majority": VAST_MAJORITY,
         "towards the origin": TO_THE_ORIGIN, "much more difficult": MUCH_HARDER}

# A panel moved when its m_g fell to at most MOVED_M of its start and its image went at least
# MOVED_NOISE times the starting noise's own size (init_std * sqrt(pixels)) away from the start.
MOVED_M = 0.5
MOVED_NOISE = 2.0

METHODS = {"gd": "plain GD", "adam": "Adam", "none": "no descent", "ngd": "normalised GD"}


class NotChecked(Exception):
    """Raised by a judge where the run cannot decide the claim; the message is the reason."""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper about a figure, and its test.

    ``judge(rows)`` gets ``{label: row}`` for ``reads`` and returns
    ``(holds, evidence)``; it may raise :class:`NotChecked`.  ``must_move``:
    the panels that must have moved (default: all of ``reads``; a claim that
    a panel cannot be reconstructed names only the others).  ``on_m``: a
    claim about the rate of minimising m under gradient descent, judged
    under plain GD only.  ``descent``: False for claims on weights (filters),
    judged once whatever the optimizer.
    """

    quote: str
    test: str
    reads: tuple[str, ...]
    judge: Callable[[dict], tuple[bool, dict]] = field(repr=False, compare=False)
    must_move: Optional[tuple[str, ...]] = None
    on_m: bool = False
    descent: bool = True


@dataclass(frozen=True)
class Verdict:
    figure: int
    number: int  # the claim's place in its figure, from 1
    optimizer: str  # gd | adam | ngd | none
    verdict: str  # HELD | NOT HELD | NOT CHECKED
    quote: str
    test: str
    reason: str = ""  # why NOT CHECKED
    evidence: dict = field(default_factory=dict)

    @property
    def method(self) -> str:
        return METHODS.get(self.optimizer, self.optimizer)

    def line(self) -> str:
        """One line, starting with the verdict: ``HELD (plain GD), figure 2 claim 1: "..." Test: ... [numbers]``."""
        head = f"{self.verdict} ({self.method}), figure {self.figure} claim {self.number}"
        if self.verdict == NOT_CHECKED:
            return f"{head}: {self.reason}. Claim: \"{self.quote}\""
        nums = ", ".join(f"{k} {v}" for k, v in self.evidence.items())
        return f"{head}: \"{self.quote}\" Test: {self.test}." + (f" [{nums}]" if nums else "")

    def short(self) -> str:
        """The line for a contact sheet: the verdict and the test (or why it was not checked), no quote."""
        head = f"{self.verdict} ({self.method}), claim {self.number}"
        return f"{head}: {self.reason}" if self.verdict == NOT_CHECKED else f"{head}: {self.test}"

    def to_dict(self) -> dict:
        return {"figure": self.figure, "claim": self.number, "optimizer": self.optimizer, "method": self.method,
                "verdict": self.verdict, "quote": self.quote, "test": self.test, "reason": self.reason,
                "evidence": self.evidence, "line": self.line()}


# --- the quantities a judge reads off a row ---------------------------------------------------------

def dist(row: dict) -> float:
    """The final input distance ||a - a_g||."""
    return float(row["final"]["input_distance"])


def m_over_r(row: dict) -> float:
    """m_g / m_r at the end: below 1 passes the paper's bar."""
    return float(row["final"]["embedding_distance"]) / max(float(row["baseline"]["embedding_distance"]), 1e-30)


def m_fall(row: dict) -> float:
    """m_g at the end over m_g at the start."""
    return float(row["final"]["embedding_distance"]) / max(float(row["start"]["embedding_distance"]), 1e-30)


def kept(row: dict) -> float:
    """The input distance at the end over its start (1: no closer than the noise it began from)."""
    return dist(row) / max(float(row["start"]["input_distance"]), 1e-30)


def rise(deep: dict, shallow: dict) -> float:
    """How much farther the deep panel ends than the shallow one: d(deep) / d(shallow) - 1."""
    return dist(deep) / max(dist(shallow), 1e-30) - 1


def closer(a: dict, b: dict, by: float) -> bool:
    """Panel ``a`` ends at least ``by`` (a fraction) closer to the image than panel ``b``."""
    return dist(a) <= (1 - by) * dist(b)


def r3(x: float) -> float:
    """Three significant figures, for evidence."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.3g}")


# --- movement ---------------------------------------------------------------------------------------

def moved(row: dict) -> tuple[bool, str]:
    """Did this panel's descent do anything?  ``(True, "")`` or ``(False, why)``.

    A reconstruction moved when m_g fell to at most :data:`MOVED_M` of its
    start and its image left the starting noise (went at least
    :data:`MOVED_NOISE` times the noise's own size from where it began).  A
    class image moved when the model that made it ranks its class first.
    A filter grid involves no descent and always counts as moved.
    """
    kind = row.get("kind", "reconstruct")
    if kind == "filters":
        return True, ""
    if kind == "generate":
        ok = bool(row.get("top5")) and row["top5"][0][0] == row.get("class_index")
        return ok, "" if ok else "its generator does not rank its class first"
    mv = row.get("moved") or {}
    if not row.get("start") or not mv:
        return False, "no starting point recorded"
    fall = m_fall(row)
    if fall > MOVED_M:
        return False, f"m_g ended at {fall:.2f} of its start"
    if mv["from_start"] < MOVED_NOISE * mv["noise"]:
        return False, f"the image moved {mv['from_start']:.3g} from its start, within {MOVED_NOISE:g}x its noise"
    return True, ""


# --- judging ------------------------------------------------------------------------------------------

def judge_claim(figure: int, number: int, claim: Claim, rows: dict, optimizer: str,
                left_out: Sequence[str] = (), budget: str = "") -> Verdict:
    """The verdict on ``claim`` over ``rows`` (``{label: row}`` of one optimizer's run).

    ``left_out``: the figure's panels this budget leaves out (a claim reading
    one is NOT CHECKED, budget too small).
    """
    v = lambda verdict, reason="", evidence=None: Verdict(figure, number, optimizer, verdict, claim.quote,  # noqa: E731
                                                            claim.test, reason, evidence or {})
    if budget == "quick":
        return v(NOT_CHECKED, "budget too small: the quick budget is a pipeline check of a handful of steps "
                              "(run the demo budget)")
    if claim.on_m and optimizer != "gd":
        return v(NOT_CHECKED, f"a claim about minimising m under plain gradient descent, and this run used "
                              f"{METHODS.get(optimizer, optimizer)} (run with --optimizer gd)")
    missing = [label for label in claim.reads if label not in rows]
    if missing:
        out = [m for m in missing if m in left_out]
        if out:
            return v(NOT_CHECKED, f"budget too small: {', '.join(out)} left out of the {budget} budget "
                                  f"(the full budget runs {'it' if len(out) == 1 else 'them'})")
        return v(NOT_CHECKED, f"panels missing: {', '.join(missing)}")
    still = []
    checked = claim.reads if claim.must_move is None else claim.must_move
    for label in checked:
        ok, why = moved(rows[label])
        if not ok:
            still.append(f"{label} ({why})")
    if still:
        shown = "; ".join(still[:3]) + (f"; and {len(still) - 3} more" if len(still) > 3 else "")
        return v(NOT_CHECKED, f"panels did not move ({len(still)} of {len(checked)}): {shown}")
    try:
        holds, evidence = claim.judge({label: rows[label] for label in claim.reads})
    except NotChecked as e:
        return v(NOT_CHECKED, str(e))
    return v(HELD if holds else NOT_HELD, evidence={k: r3(x) if isinstance(x, float) else x
                                                    for k, x in evidence.items()})


def disagreements(verdicts: Sequence[Verdict]) -> list[str]:
    """A sentence for every claim on which plain GD and Adam reached different verdicts (both judged)."""
    by: dict = {}
    for v in verdicts:
        if v.verdict != NOT_CHECKED:
            by.setdefault((v.figure, v.number), {})[v.optimizer] = v.verdict
    out = []
    for (fig, num), got in sorted(by.items()):
        if "gd" in got and "adam" in got and got["gd"] != got["adam"]:
            out.append(f"The optimizers disagree on figure {fig} claim {num}: {got['gd']} under plain GD (the "
                       f"paper's method), {got['adam']} under Adam. Adam rescales each pixel's step by its own "
                       f"gradient history, which can hide how poorly conditioned a layer is.")
    return out
