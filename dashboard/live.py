"""A run in progress: the live bar, image and curves, the queue note and the Stop button."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Optional

import plotly.graph_objects as go
import streamlit as st

from vitrep.result import Progress
from . import keys
from .plots import curves_figure_from
from vitrep.errors import VitrepError

from .server import ON_GPU, error, queue_limit


class QueueNote:
    """Tells a waiting session its place in the device queue (an ``on_wait`` callback); clears itself."""

    def __init__(self) -> None:
        self.slot = st.empty()

    def __call__(self, place: int, queued: int) -> None:
        self.slot.info(f"Queued: {place} run{'s' if place != 1 else ''} ahead of yours on this server's "
                       f"{'GPU' if ON_GPU else 'CPU'}. Yours starts when they finish.")

    def clear(self) -> None:
        self.slot.empty()


def stop_button(key: str):
    """A Stop button shown while a run is under way; returns its placeholder (empty it when the run ends).

    Clicking it reruns the page, which stops the run at its next progress update (Streamlit ends the
    old script run); ``stopped(key)`` is then true on that rerun.
    """
    slot = st.empty()
    slot.button("Stop this run", key=key, help="Stops the run; what finished so far stays on screen.")
    return slot


def stopped(key: str) -> bool:
    return bool(st.session_state.get(key))


class Live:
    """Progress bar, live image and live curves, fed by the engine's callback.

    ``labels[i]`` names config i of the run (a grid's cells in order; a progress row is named by the
    config it runs, :attr:`vitrep.result.Progress.index`); ``batches`` (for a sweep or a figure) is the
    number of batches the run goes through, ``names[g]`` what batch g is (a model), so the bar names the
    model and moves forward over the whole run, with the time left for all of it.
    """

    DRAW_EVERY = 0.5  # seconds between redraws: do not flood the browser

    def __init__(self, labels: list[str], total: int, show_image: bool = True, batches: int = 1,
                 names: Optional[list[str]] = None, curves: bool = True, max_curves: int = 6) -> None:
        self.labels, self.total, self.batches, self.names = labels, total, max(1, batches), names or []
        self.bar = st.progress(0.0, text="starting…")
        self.image = st.empty() if show_image else None
        self.chart = st.empty() if curves else None
        self.history: dict[tuple[int, int], dict[str, list]] = {}
        self.baselines: dict[tuple[int, int], float] = {}
        self.max_curves = max_curves
        self.last_draw = 0.0
        self.draws = 0
        self.t0 = time.perf_counter()

    def __call__(self, p: Progress) -> None:
        batch = p.batch
        frac = min(1.0, (batch + p.step / max(1, p.total)) / self.batches)
        spent = time.perf_counter() - self.t0
        left = spent * (1 - frac) / frac if frac > 0.02 else float("nan")  # for the whole run, all batches
        what = f"{self.names[batch]} · " if batch < len(self.names) else ""
        where = f"batch {batch + 1}/{self.batches} · " if self.batches > 1 else ""
        self.bar.progress(frac, text=f"{frac:.0%} of the run · {where}{what}step {p.step}/{p.total} · "
                                     f"{p.steps_per_second:.1f} steps/s · "
                                     + (f"~{left / 60:.1f} min left" if left > 90 else f"~{left:.0f} s left"
                                        if left == left else "warming up"))
        which = [p.index[i] if i < len(p.index) else (batch, i) for i in range(len(p.rows))]  # each row's config
        for i, b in enumerate(p.baselines):
            self.baselines[which[i]] = b
        for i, row in enumerate(p.rows):
            if row:
                h = self.history.setdefault(which[i], {k: [] for k in ("step", "embedding_distance",
                                                                         "input_distance", "psnr", "ssim")})
                if not h["step"] or h["step"][-1] != row["step"]:
                    for k in h:
                        h[k].append(row[k])
        st.session_state[keys.LAST_PROGRESS] = {"step": p.step, "rows": p.rows, "image": p.images[0]}
        now = time.perf_counter()
        if now - self.last_draw > self.DRAW_EVERY or p.step == p.total:
            self.last_draw = now
            self.draws += 1
            if self.image is not None and p.images:
                self.image.image(p.images[0], caption=f"step {p.step}", width=280)
            if self.chart is not None:
                self.chart.plotly_chart(self.figure(), key=f"live_{id(self)}_{self.draws}")

    def figure(self) -> go.Figure:
        series = []
        for key, h in list(self.history.items())[-self.max_curves:]:
            if isinstance(key, int) and key < len(self.labels):  # a grid's config: its panel's name
                label = self.labels[key]
            else:  # a lone run or batch: its row
                g, i = key
                label = self.labels[i] if self.batches == 1 and i < len(self.labels) else f"batch {g + 1} row {i + 1}"
            series.append((label, h, self.baselines.get(key)))
        return curves_figure_from(series, live=True)

    def done(self) -> None:
        """The run is over: the final result replaces the live preview."""
        self.bar.empty()
        if self.image is not None:
            self.image.empty()
        if self.chart is not None:
            self.chart.empty()


def step_bar(bar, p: Progress, t0: float, what: str) -> None:
    """A batch run's bar: the share of steps done, "step k/n · ``what`` · ~N s left" (from ``t0``)."""
    done = p.step / max(1, p.total)
    left = (time.perf_counter() - t0) * (1 - done) / done if done > 0 else float("nan")
    bar.progress(min(1.0, done), text=f"step {p.step}/{p.total} · {what} · "
                                      + (f"~{left:.0f} s left" if left == left else "warming up"))


@contextlib.contextmanager
def running(stop_key: str, display: Optional[Callable[[], object]] = None):
    """The sequence every page that runs shares: a Stop button, the run's progress display (made by
    ``display()`` under the button: a :class:`Live`, or any callable with an optional ``done()``), the
    queue note; yields the engine's keywords ``progress``, ``on_wait`` and ``queue_limit``, and clears
    all three when the run ends.  A run stopped (the page reruns) or refused leaves them to Streamlit."""
    stop = stop_button(stop_key)
    shown = display() if display is not None else None
    queued = QueueNote()
    yield {"progress": shown, "on_wait": queued, "queue_limit": queue_limit()}
    queued.clear()
    if hasattr(shown, "done"):
        shown.done()
    stop.empty()


class Bar:
    """A plain progress bar (and an optional image) for runs that are not reconstructions: ``text(p)`` says
    what the bar shows at each report."""

    def __init__(self, text: Callable, total: Optional[int] = None, image_width: int = 0) -> None:
        self.text, self.total = text, total
        self.bar = st.progress(0.0, text="starting…")
        self.image = st.empty() if image_width else None
        self.width = image_width

    def __call__(self, p: Progress) -> None:
        self.bar.progress(min(1.0, p.step / max(1, self.total or p.total)), text=self.text(p))
        if self.image is not None and p.images:
            self.image.image(p.images[0], width=self.width)

    def done(self) -> None:
        self.bar.empty()
        if self.image is not None:
            self.image.empty()


@contextlib.contextmanager
def attempt():
    """The area a run draws in: a user's error (a bad config, a refusal) empties it and shows its one sentence,
    so nothing of the run (a Stop button, a bar) is left behind."""
    area = st.empty()
    try:
        with area.container():
            yield
    except VitrepError as err:
        area.empty()
        error(err)
