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
from .server import ON_GPU, queue_limit


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

    ``labels[i]`` names row i of a batch; ``batches`` (for a sweep or a figure) is the number of
    batches the run goes through, ``names[g]`` what batch g is (a model), so the bar names the model
    and moves forward over the whole run instead of restarting per batch.
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

    def __call__(self, p: Progress) -> None:
        batch = p.batch
        frac = (batch + p.step / max(1, p.total)) / self.batches
        left = (p.total - p.step) / p.steps_per_second if p.steps_per_second > 0 else float("nan")
        what = f"{self.names[batch]} · " if batch < len(self.names) else ""
        where = f"batch {batch + 1}/{self.batches} · " if self.batches > 1 else ""
        self.bar.progress(min(1.0, frac), text=f"{where}{what}step {p.step}/{p.total} · {p.steps_per_second:.1f} "
                                               f"steps/s · {'~%.0f s left in this batch' % left if left == left else 'warming up'}")
        for i, b in enumerate(p.baselines):
            self.baselines[(batch, i)] = b
        for i, row in enumerate(p.rows):
            if row:
                h = self.history.setdefault((batch, i), {k: [] for k in ("step", "embedding_distance",
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
        for (g, i), h in list(self.history.items())[-self.max_curves:]:
            label = self.labels[i] if self.batches == 1 and i < len(self.labels) else f"batch {g + 1} row {i + 1}"
            series.append((label, h, self.baselines.get((g, i))))
        return curves_figure_from(series, live=True)

    def done(self) -> None:
        """The run is over: the final result replaces the live preview."""
        self.bar.empty()
        if self.image is not None:
            self.image.empty()
        if self.chart is not None:
            self.chart.empty()


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
