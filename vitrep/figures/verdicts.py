"""How a figure's claim is judged on a run's numbers: three verdicts, and the words that set the thresholds.

A :class:`Claim` is the paper's own words (``quote``), what is measured to
test them (``test``), the panels it reads and a ``judge`` over those panels'
rows (a row is a panel's entry of ``distances.json``).  :func:`judge_claim`
gives one :class:`Verdict` per claim and optimizer:

- **NOT CHECKED** first, wherever the run cannot test the claim: the quick
  budget (a pipeline check), a panel it reads is not in the run (left out of
  the budget), a panel was idle (:func:`moved`: too few steps to be more than
  a pipeline check, a step size of zero, or an image still within its
  starting noise; a descent that moved the image is evidence however slowly
  m_g fell), the claim is about minimising m under plain gradient descent and
  the run used Adam, or the judge itself says the run cannot decide (a
  model's weights are missing, the long panel ran no longer than the short
  one);
- then **HELD** or **NOT HELD**, by the judge's test of the quote, under
  each metric the claim's words name (:data:`CLAIM_METRICS`): a claim about
  *clarity* or *quality* (what an eye judges) is read by structure (SSIM)
  first, a claim about *distance*, *error* or *accuracy* by the input
  distance ``||a - a_g||`` (L2) first; both are judged and shown, and where
  they disagree the verdict is split and names each (``HELD by structure
  (SSIM), NOT HELD by distance (L2)``).

Thresholds are relative to the run (ratios of input distances, shares of a
decline, m_g / m_r), and each is named after the paper's word it stands for
(:data:`WORDS`), so a check reads as its quote and no number is chosen per
figure.  docs/findings.md lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

from .metrics import DISTANCE_FIRST, L2, METRICS, SSIM, STRUCTURE_FIRST, Metric, NotChecked  # noqa: F401 (handed on)

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

# A panel was idle (NOT CHECKED) when it ran at most PIPELINE_STEPS steps (the quick budget's most: a pipeline
# check), its step size was zero, or its image stayed within MOVED_NOISE times the starting noise's own size
# (init_std * sqrt(pixels)) of where it began.  How far m_g fell is not asked: a slow descent is evidence.
PIPELINE_STEPS = 8
MOVED_NOISE = 2.0

METHODS = {"gd": "plain GD", "adam": "Adam", "none": "no descent", "ngd": "normalised GD"}




@dataclass(frozen=True)
class Claim:
    """One claim of the paper about a figure, and its test.

    ``judge(rows)`` gets ``{label: row}`` for ``reads`` and returns
    ``(holds, evidence)``; it may raise :class:`NotChecked`.  ``must_move``:
    the panels that must have moved (default: all of ``reads``; a claim that
    a panel cannot be reconstructed names only the others).  ``on_m``: a
    claim about the rate of minimising m under gradient descent, judged
    under plain GD only.  ``descent``: False for claims on weights (filters),
    judged once whatever the optimizer.  ``metrics``: for a claim about how
    close a picture ends, the metrics it is judged by, its words' own first
    (:data:`STRUCTURE_FIRST` for clarity, :data:`DISTANCE_FIRST` for
    accuracy): ``judge(rows, metric)`` is called once per metric (a
    :class:`Metric`).  Without metrics, ``judge(rows)`` is called once and
    ``measure`` names what it reads.
    """

    quote: str
    test: str
    reads: tuple[str, ...]
    judge: Callable[[dict], tuple[bool, dict]] = field(repr=False, compare=False)
    must_move: Optional[tuple[str, ...]] = None
    on_m: bool = False
    descent: bool = True
    metrics: tuple[str, ...] = ()
    measure: str = ""  # what a claim without picture metrics reads, e.g. "m_g / m_r"
    says: Optional[Callable] = field(default=None, repr=False, compare=False)  # (rows, metric) -> plain sentence

    def measured_by(self) -> str:
        """What the verdict line names as the claim's metric or metrics."""
        if self.metrics:
            return " and ".join(METRICS[m].name for m in self.metrics)
        return self.measure or ("m_g / m_r" if self.on_m else "")


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
    by_metric: dict = field(default_factory=dict)  # {"SSIM": verdict, "L2": verdict}, the claim's own first
    measure: str = ""  # what a claim without picture metrics reads
    reasons: dict = field(default_factory=dict)  # per metric, why it was NOT CHECKED by it
    plain: str = ""  # what the numbers say, in words, before the quote and the test
    note: str = ""  # about the run: a budget below the write-up's, a bar met by an image still noise

    @property
    def split(self) -> bool:
        return len(set(self.by_metric.values())) > 1

    def words(self) -> str:
        """The verdict naming its metric(s): ``HELD by structure (SSIM), NOT HELD by distance (L2)``."""
        if not self.by_metric:
            return f"{self.verdict} by {self.measure}" if self.measure and self.verdict != NOT_CHECKED \
                else self.verdict
        names = {m.short: m.name for m in METRICS.values()}
        if not self.split:
            return f"{self.verdict} by {' and '.join(names[k] for k in self.by_metric)}"
        return ", ".join(f"{v} by {names[k]}" for k, v in self.by_metric.items())

    @property
    def method(self) -> str:
        return METHODS.get(self.optimizer, self.optimizer)

    def line(self) -> str:
        """One line, starting with the verdict and naming its metric(s):
        ``HELD by structure (SSIM) and distance (L2) (plain GD), figure 2 claim 1: "..." Test: ... [numbers]``."""
        head = f"{self.words()} ({self.method}), figure {self.figure} claim {self.number}"
        if self.verdict == NOT_CHECKED and not self.by_metric:
            return f"{head}: {self.reason}. Claim: \"{self.quote}\""
        if self.reasons:
            head += " (" + "; ".join(f"not checked by {k}: {r}" for k, r in self.reasons.items()) + ")"
        nums = ", ".join(f"{k} {v}" for k, v in self.evidence.items())
        words = " ".join(x for x in (self.plain, self.note) if x)
        quote = f"The write-up: \"{self.quote}\"" if words else f"\"{self.quote}\""
        return f"{head}: {words + ' ' if words else ''}{quote} Test: {self.test}." + (f" [{nums}]" if nums else "")

    def short(self) -> str:
        """The line for a contact sheet: the verdict and what the numbers say in words (else the test; or why it
        was not checked), no quote."""
        head = f"{self.words()} ({self.method}), claim {self.number}"
        if self.verdict == NOT_CHECKED and not self.by_metric:
            return f"{head}: {self.reason}"
        return f"{head}: {' '.join(x for x in (self.plain, self.note) if x) or self.test}"

    def to_dict(self) -> dict:
        return {"figure": self.figure, "claim": self.number, "optimizer": self.optimizer, "method": self.method,
                "verdict": self.verdict, "words": self.words(), "by_metric": self.by_metric, "split": self.split,
                "measure": self.measure, "plain": self.plain, "note": self.note,
                "quote": self.quote, "test": self.test, "reason": self.reason, "evidence": self.evidence,
                "line": self.line()}


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


def r3(x: float) -> float:
    """Three significant figures, for evidence."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.3g}")


# --- movement ---------------------------------------------------------------------------------------

def moved(row: dict) -> tuple[bool, str]:
    """Did this panel's descent do anything?  ``(True, "")`` or ``(False, why)``.

    A reconstruction was idle when it ran at most :data:`PIPELINE_STEPS`
    steps (a pipeline check), its step size was zero, or its image stayed
    within :data:`MOVED_NOISE` times its starting noise's own size of where it
    began (blur alone moves it less than that).  A descent that ran and moved
    the image is evidence however slowly m_g fell: that m is hard to minimise
    is what several claims say.  A class image moved when the model that made
    it ranks its class first.  A filter grid involves no descent and always
    counts as moved.
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
    cfg = row.get("config") or {}
    steps = int(cfg.get("steps", row.get("steps", 0)))
    if steps <= PIPELINE_STEPS:
        return False, f"it ran {steps} step{'s' if steps != 1 else ''}, a pipeline check (at most {PIPELINE_STEPS})"
    if cfg.get("lr_start", 1) == 0:
        return False, "its step size is zero"
    if mv["from_start"] < MOVED_NOISE * mv["noise"]:
        return False, f"the image moved {mv['from_start']:.3g} from its start, within {MOVED_NOISE:g}x its noise"
    return True, ""


# --- judging ------------------------------------------------------------------------------------------

def loose_bar(rows: dict) -> list[str]:
    """The panels that meet the write-up's bar m_g < m_r while their image ended no closer to the picture than the
    noise it started from (not 5% closer: 'a decrease'): deep layers, whose m_r is large, make the bar loose."""
    return [label for label, r in rows.items() if r.get("kind", "reconstruct") == "reconstruct" and r.get("start")
            and m_over_r(r) < 1 and kept(r) > 1 - CLEARLY]


def run_note(claim: Claim, rows: dict, full_steps: Optional[dict] = None) -> str:
    """What a reader must know about the run behind a verdict: a budget below the write-up's, a loose bar."""
    notes = []
    recon = {k: r for k, r in rows.items() if k in claim.reads and r.get("kind", "reconstruct") == "reconstruct"}
    ran = sorted({int(r.get("steps", 0)) for r in recon.values()})
    wrote = sorted({full_steps[k] for k in recon if full_steps and k in full_steps})
    if ran and wrote and ran[-1] < wrote[-1]:
        span = lambda v: f"{v[0]:,}" if len(v) == 1 else f"{v[0]:,}-{v[-1]:,}"  # noqa: E731
        notes.append(f"{span(ran)} steps a panel; the write-up used {span(wrote)}.")
    loose = loose_bar(recon)
    if loose:
        notes.append(f"{', '.join(loose)} {'meets' if len(loose) == 1 else 'meet'} the bar m_g < m_r while "
                     f"{'its image is' if len(loose) == 1 else 'their images are'} no closer to the picture than the "
                     f"noise {'it' if len(loose) == 1 else 'they'} started from: a loose pass, the bar met by an image "
                     f"that is not the picture (a large m_r, or many inputs with one output).")
    return " ".join(notes)


def _missing(missing: list[str], left_out: Sequence[str], no_weights: Sequence[str], budget: str) -> str:
    """Why a claim reading panels that are not in the run is NOT CHECKED."""
    need = [m for m in missing if m in no_weights]
    if need:
        return (f"trained weights missing: {', '.join(need)} not run (this run is the figure's untrained half; "
                f"with the trained weights the whole figure runs)")
    out = [m for m in missing if m in left_out]
    if out:
        return (f"budget too small: {', '.join(out)} left out of the {budget} budget "
                f"(the full budget runs {'it' if len(out) == 1 else 'them'})")
    return f"panels missing: {', '.join(missing)}"


def judge_claim(figure: int, number: int, claim: Claim, rows: dict, optimizer: str,
                left_out: Sequence[str] = (), budget: str = "", full_steps: Optional[dict] = None,
                no_weights: Sequence[str] = ()) -> Verdict:
    """The verdict on ``claim`` over ``rows`` (``{label: row}`` of one optimizer's run).

    ``left_out``: the figure's panels this budget leaves out (a claim reading
    one is NOT CHECKED, budget too small).  ``no_weights``: the trained panels
    a run of the figure's untrained half left out (a claim reading one is NOT
    CHECKED, trained weights missing).  ``full_steps``: each panel's steps
    at the write-up's budget, for the note that a run was shorter.
    """
    v = lambda verdict, reason="", evidence=None: Verdict(figure, number, optimizer, verdict, claim.quote,  # noqa: E731
                                                            claim.test, reason, evidence or {})
    if budget == "quick":
        return v(NOT_CHECKED, "budget too small: the quick budget is a pipeline check of a handful of steps "
                              "(run the demo budget)")
    if claim.on_m and optimizer != "gd":
        return v(NOT_CHECKED, f"a claim about minimising m under plain gradient descent, and this run used "
                              f"{METHODS.get(optimizer, optimizer)} (a plain-GD run judges it)")
    missing = [label for label in claim.reads if label not in rows]
    if missing:
        return v(NOT_CHECKED, _missing(missing, left_out, no_weights, budget))
    still = []
    checked = claim.reads if claim.must_move is None else claim.must_move
    for label in checked:
        ok, why = moved(rows[label])
        if not ok:
            still.append(f"{label} ({why})")
    if still:
        shown = "; ".join(still[:3]) + (f"; and {len(still) - 3} more" if len(still) > 3 else "")
        return v(NOT_CHECKED, f"panels did not move ({len(still)} of {len(checked)}): {shown}")
    read = {label: rows[label] for label in claim.reads}
    note = run_note(claim, read, full_steps)
    if not claim.metrics:
        try:
            holds, evidence = claim.judge(read)
        except NotChecked as e:
            return v(NOT_CHECKED, str(e))
        return replace(v(HELD if holds else NOT_HELD, evidence=_rounded(evidence)), measure=claim.measured_by(),
                       plain=_plain(claim, read, []), note=note)
    by, reasons = {}, {}
    evidence = {f"{label} {m.short}": m.of(read[label]) for label in claim.reads for m in METRICS.values()
                if m.key in read[label].get("final", {})}  # both metrics of every panel, whichever judges
    for name in claim.metrics:
        m = METRICS[name]
        try:
            holds, ev = claim.judge(read, m)
            by[m.short] = HELD if holds else NOT_HELD
            evidence.update(ev)
        except NotChecked as e:
            by[m.short], reasons[m.short] = NOT_CHECKED, str(e)
    first = next(iter(by))
    return replace(v(by[first], reasons.get(first, ""), _rounded(evidence)), by_metric=by, reasons=reasons,
                   plain=_plain(claim, read, [METRICS[n] for n in claim.metrics if by[METRICS[n].short] != NOT_CHECKED],
                                len(set(by.values())) > 1), note=note)


def _plain(claim: Claim, read: dict, metrics: list, split: bool = False) -> str:
    """The claim's plain sentence on these rows: by its own metric, and by the other where the two disagree."""
    if claim.says is None:
        return ""
    try:
        if not claim.metrics:
            return claim.says(read, None)
        said = [claim.says(read, m) for m in (metrics if split else metrics[:1])]
    except NotChecked:
        return ""
    if len(said) > 1:
        said[1] = f"By {metrics[1].name}: {said[1][0].lower()}{said[1][1:]}"
    return " ".join(said)


def says_ends(a: str, subject: str, b: str, than: str, write_up: str) -> Callable:
    """A claim's plain sentence on two panels: ``<subject> ends 12% closer to the image than <than> (the write-up:
    <write_up>).``, panel ``a`` against panel ``b`` by the claim's metric."""
    return lambda rows, m: (f"{subject} ends {farther(m, m.worse(rows[a], rows[b]))} than {than} (the write-up: "
                            f"{write_up}).")


def farther(m: Metric, worse: float) -> str:
    """``63% farther from the image`` (distance) or ``7% less like the image in structure`` (SSIM)."""
    if m is None or m.lower_is_better:
        return f"{abs(worse):.0%} {'farther from' if worse >= 0 else 'closer to'} the image"
    return f"{abs(worse):.0%} {'less' if worse >= 0 else 'more'} like the image in structure"


def _rounded(evidence: dict) -> dict:
    return {k: r3(x) if isinstance(x, float) else x for k, x in evidence.items()}


def verdict_set(summary: dict) -> list:
    """Every claim's verdict by every metric in a run's ``distances.json`` summary: what another run (a cheaper
    budget, another precision) must reproduce to give the same verdicts."""
    return [(v["claim"], v["optimizer"], v["verdict"], sorted((v.get("by_metric") or {}).items()))
            for v in summary["verdicts"]]


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
