"""The ensemble page's live view: the members as a strip, and pixel-space spread beside output-space closeness."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from vitrep.ensembles import spread_of
from vitrep.result import Progress

from .live import step_bar


def distances_figure(steps, pairwise, m_g, m_r=None) -> go.Figure:
    """The members' mean pairwise input distance and their mean m_g (with m_r dashed) against step."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("between the inputs: mean ‖a_g,i − a_g,j‖",
                                                        "between the outputs: mean m_g (dashed: m_r)"))
    fig.add_trace(go.Scatter(x=steps, y=pairwise, name="pairwise input distance"), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=m_g, name="mean m_g"), 1, 2)
    if m_r is not None and steps:
        fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[m_r, m_r], name="mean m_r", line=dict(dash="dash")), 1, 2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


class EnsembleLive:
    """Fed by the engine's callback: a progress bar, the members' current images and the two distances."""

    DRAW_EVERY = 0.5

    def __init__(self, seeds: int, steps: int) -> None:
        self.seeds, self.total = seeds, steps
        self.bar = st.progress(0.0, text="starting…")
        self.strip = st.empty()
        self.chart = st.empty()
        self.steps, self.pairwise, self.m_g, self.m_r = [], [], [], None
        self.last = 0.0
        self.t0 = time.perf_counter()

    def __call__(self, p: Progress) -> None:
        step_bar(self.bar, p, self.t0, f"{self.seeds} starts")
        if not p.images:
            return
        self.steps.append(p.step)
        self.pairwise.append(spread_of(p.images)[2])
        rows = [r for r in p.rows if r]
        self.m_g.append(sum(r["embedding_distance"] for r in rows) / max(1, len(rows)))
        if p.baselines:
            self.m_r = sum(p.baselines) / len(p.baselines)
        now = time.perf_counter()
        if now - self.last > self.DRAW_EVERY or p.step == p.total:
            self.last = now
            self.strip.image(list(p.images), caption=[f"seed {i}" for i in range(len(p.images))], width=96)
            self.chart.plotly_chart(distances_figure(self.steps, self.pairwise, self.m_g, self.m_r),
                                    key=f"ens_live_{len(self.steps)}")

    def done(self) -> None:
        self.bar.empty()
        self.strip.empty()
        self.chart.empty()
