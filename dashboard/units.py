"""The Units page's pieces: the live view of a units run, the score curves, and a unit's caption."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from vitrep.result import Progress

from .live import step_bar

KINDS = {"mlp": "MLP hidden unit (after the nonlinearity)", "head": "attention head (its output's energy)",
         "channel": "channel at a layer (mean over tokens or positions)",
         "neuron": "channel at the middle token or centre position"}


def caption(objective: str, score: float) -> str:
    return f"{objective}: {score:.3g}"


def scores_figure(curves: list[dict], names: list[str]) -> go.Figure:
    """Each unit's objective against step (measured on the untransformed image)."""
    fig = go.Figure()
    for c, n in zip(curves, names):
        fig.add_trace(go.Scatter(x=c["step"], y=c["score"], name=n, mode="lines"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="step",
                      yaxis_title="objective (higher: the unit responds more)", legend=dict(font=dict(size=10)))
    return fig


class UnitsLive:
    """Fed by the engine's callback: a progress bar with the time left and the images as they form."""

    DRAW_EVERY = 0.5

    def __init__(self, names: list[str], steps: int, width: int = 112) -> None:
        self.names, self.total, self.width = names, steps, width
        self.bar = st.progress(0.0, text="starting…")
        self.strip = st.empty()
        self.last, self.t0 = 0.0, time.perf_counter()

    def __call__(self, p: Progress) -> None:
        step_bar(self.bar, p, self.t0, f"{len(self.names)} unit(s)")
        now = time.perf_counter()
        if p.images and (now - self.last > self.DRAW_EVERY or p.step == p.total):
            self.last = now
            self.strip.image(list(p.images), caption=[caption(n, r["score"]) for n, r in zip(self.names, p.rows)],
                             width=self.width)

    def done(self) -> None:
        self.bar.empty()
        self.strip.empty()
