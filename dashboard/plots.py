"""Results on the page: distance curves, the verdict sentence, PNG bytes and downloads."""

from __future__ import annotations

import io
import json
from typing import Optional

import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.subplots import make_subplots

from vitrep.images import to_pil
from vitrep.result import Result


def png_bytes(img) -> bytes:
    """A uint8 ``(H, W, 3)`` array or a PIL image as PNG bytes, for downloads."""
    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else to_pil(img)).save(buf, "PNG")
    return buf.getvalue()


def _log_axis(fig: go.Figure, col: int) -> None:
    fig.update_yaxes(type="log", row=1, col=col, dtick="D2", tickformat=".3~g", exponentformat="none",
                     tickfont=dict(size=12))


def curves_figure_from(series: list[tuple[str, dict, Optional[float]]], live: bool = False) -> go.Figure:
    """``(label, curves, m_r)`` -> m_g with its m_r line, input distance and SSIM against step."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("m_g (dashed: the bar m_r)", "‖a − a_g‖ (input distance)",
                                                        "SSIM (structure; 1 = the image)"))
    for i, (label, c, m_r) in enumerate(series):
        color = f"hsl({(i * 67) % 360},65%,45%)"
        if not c["step"]:
            continue
        fig.add_trace(go.Scatter(x=c["step"], y=c["embedding_distance"], name=label,
                                 line=dict(color=color, simplify=False), legendgroup=label), 1, 1)
        if m_r is not None:
            fig.add_trace(go.Scatter(x=[c["step"][0], max(c["step"][-1], 1)], y=[m_r] * 2,
                                     line=dict(color=color, dash="dash"), showlegend=False, legendgroup=label,
                                     name=f"{label} m_r"), 1, 1)
        fig.add_trace(go.Scatter(x=c["step"], y=c["input_distance"], line=dict(color=color), showlegend=False,
                                 legendgroup=label), 1, 2)
        fig.add_trace(go.Scatter(x=c["step"], y=c.get("ssim", []), line=dict(color=color), showlegend=False,
                                 legendgroup=label), 1, 3)
    _log_axis(fig, 1)
    _log_axis(fig, 2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
                      uirevision="live" if live else None)
    return fig


def curves_figure(results: list[tuple[str, Result]]) -> go.Figure:
    """Embedding distance (with each run's a' baseline dashed), input distance and SSIM against step."""
    return curves_figure_from([(label, r.curves, r.baseline["embedding_distance"]) for label, r in results])


def verdict(r: Result) -> str:
    f, b = r.final, r.baseline
    ok = "reaches" if r.success else "does not reach"
    c = r.config
    steps = (f"{c.optimizer}, lr {c.lr_start:.3g} → {c.lr_end:.3g}{', bf16 products' if c.precision == 'bf16' else ''}")
    back = (f" A blow-up sent it back to its best image {r.backoffs} time(s), each time at a quarter of the step."
            if r.backoffs else "")
    return (f"{r.status.capitalize()} after {r.steps} steps ({r.steps_per_second:.1f} steps/s"
            f"{', from the memo' if r.from_cache else ''}; {steps}). The reconstruction **{ok}** the paper's bar: "
            f"m_g = {f['embedding_distance']:.4g} {'<' if r.success else '≥'} m_r = {b['embedding_distance']:.4g} "
            f"(the distance a barely visible N(0, 1/18) change makes). Input distance {f['input_distance']:.4g}, "
            f"PSNR {f['psnr']:.2f} dB, SSIM {f['ssim']:.3f} (structure: 1 is the image itself, 0 noise).{back}")


def downloads(r: Result, key: str) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("reconstruction.png", png_bytes(r.image), "reconstruction.png", "image/png", key=f"{key}_dl1",
                       width="stretch")
    c2.download_button("target.png", png_bytes(r.target), "target.png", "image/png", key=f"{key}_dl2",
                       width="stretch")
    c3.download_button("curves.csv", r.curves_csv(), "curves.csv", "text/csv", key=f"{key}_dl3", width="stretch")
    c4.download_button("result.json", json.dumps(r.summary(), indent=2), "result.json", "application/json",
                       key=f"{key}_dl4", width="stretch",
                       help="Every setting and number of this run; the command line reruns it from this file.")
