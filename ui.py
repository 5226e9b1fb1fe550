"""Shared Streamlit pieces for the dashboard pages: pickers, live progress, plots, downloads.

Pages stay thin (widgets -> config -> engine -> plots); all computation is in
``vitrep``.  Every user error is shown as its one sentence with ``st.error``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Optional

import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

from vitrep.cache import get_memo
from vitrep.errors import VitrepError
from vitrep.images import SAMPLES, fit_image, load_image, sample_path, to_pil, to_tensor
from vitrep.models import SPECS, make_ref, trained_file_local
from vitrep.reconstruct import Progress, Result
from vitrep.surgery import COMPONENTS
from vitrep.taps import available_taps, describe_tap, parse_tap

ON_GPU = torch.cuda.is_available()
DEFAULT_STEPS = 1500 if ON_GPU else 150  # Streamlit Cloud (CPU): a layer-1 run well under a minute
CHECKPOINT_DIR = Path(tempfile.gettempdir()) / "vitrep-checkpoints"
MODEL_LABELS = {name: f"{name}: {spec.description}" for name, spec in SPECS.items()}


@st.cache_resource
def memo():
    """The disk memo, shared by every session of this server; its computations are logged to stderr."""
    log = logging.getLogger("vitrep")
    if not log.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(asctime)s vitrep %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
    return get_memo()


def png_bytes(img) -> bytes:
    """A uint8 ``(H, W, 3)`` array or a PIL image as PNG bytes, for downloads."""
    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else to_pil(img)).save(buf, "PNG")
    return buf.getvalue()


def sidebar() -> None:
    """Device, memo size with a clear button, and which trained weights are on this machine."""
    m = memo()
    with st.sidebar:
        st.markdown("**Device**: " + (f"GPU · {torch.cuda.get_device_name(0)}" if ON_GPU
                                       else f"CPU · {torch.get_num_threads()} threads"))
        st.markdown(f"**Memo**: {len(m)} runs, {m.volume() / 2**20:.1f} MB")
        st.caption(f"Computed by this server: {m.computations} · memo hits: {m.hits}")
        if st.button("Clear memo", key="clear_memo"):
            m.clear()
            st.toast("Memo cleared.")
        local = [n for n, s in SPECS.items() if s.trained and trained_file_local(s)]
        st.markdown("**Trained weights here**: " + (", ".join(local) if local else "none (untrained models and "
                                                                                    "checkpoint files work offline)"))


def image_picker(key: str, size: int, resize: str = "crop", default: str = "cat") -> Optional[tuple[torch.Tensor, str]]:
    """A bundled sample or an upload, fitted to ``size``; shows the error sentence for a bad file."""
    src = st.radio("Image", ["Sample", "Upload"], horizontal=True, key=f"{key}_src")
    try:
        if src == "Sample":
            names = list(SAMPLES)
            name = st.selectbox("Sample image", names, index=names.index(default) if default in names else 0,
                                key=f"{key}_sample")
            return to_tensor(fit_image(_cached_image(str(sample_path(name))), size, resize)), name
        up = st.file_uploader("Upload an image", type=["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"],
                              key=f"{key}_upload")
        if up is None:
            st.info("Upload an image, or pick a sample.")
            return None
        return to_tensor(fit_image(load_image(up.getvalue()), size, resize)), up.name
    except VitrepError as e:
        st.error(str(e))
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_image(path: str):
    return load_image(path)


def checkpoint_input(label: str, key: str) -> Optional[str]:
    """A checkpoint as a path on this machine (any size) or a small upload; the path to load, or None."""
    path = st.text_input(f"{label}: path on this machine", "", key=f"{key}_path",
                         placeholder="/path/to/weights.safetensors or .pt")
    if path.strip():
        return path.strip()
    up = st.file_uploader("…or upload one (small files; the upload limit is set in .streamlit/config.toml)",
                          type=["safetensors", "pt", "pth", "bin"], key=key)
    return _save_checkpoint(up) if up is not None else None


def _save_checkpoint(up) -> str:
    data = up.getvalue()
    CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
    suffix = ".safetensors" if up.name.endswith(".safetensors") else ".pt"
    path = CHECKPOINT_DIR / (hashlib.sha256(data).hexdigest()[:16] + suffix)
    if not path.exists():
        path.write_bytes(data)
    return str(path)


def model_picker(key: str, default: str = "vit_b_32", allow_swaps: bool = True, models=None, pre: dict | None = None):
    """Model, weights (untrained / trained / checkpoint file), seed, architecture, swaps -> ModelRef or None.

    ``pre`` fills the widgets (a preset's panel): model, weights, swaps, arch.
    """
    pre = pre or {}
    names = list(models or SPECS)
    default = pre.get("model", default)
    name = st.selectbox("Model", names, index=names.index(default) if default in names else 0,
                        format_func=lambda n: MODEL_LABELS[n], key=f"{key}_model")
    spec = SPECS[name]
    options = ["untrained", "trained", "checkpoint file"] if spec.trained else ["untrained", "checkpoint file"]
    w0 = pre.get("weights", "untrained")
    weights = st.radio("Weights", options, index=options.index(w0) if w0 in options else 0, horizontal=True,
                       key=f"{key}_weights")
    if weights == "checkpoint file":
        weights = checkpoint_input("Checkpoint (.safetensors or a torch state_dict)", f"{key}_ckpt")
        if weights is None:
            st.info("Give a checkpoint for this architecture.")
            return None
    elif weights == "trained" and not trained_file_local(spec):
        st.caption(f"{spec.trained.filename} is not on this machine yet; it downloads on first use.")
    arch = {}
    if spec.configurable:
        cols = st.columns(len(spec.arch_defaults))
        for col, (k, v) in zip(cols, spec.arch_defaults):
            v = dict(pre.get("arch", ())).get(k, v)
            arch[k] = col.number_input(k, min_value=1, value=int(v), step=1, key=f"{key}_{k}")
    seed = st.number_input("Model seed (untrained init)", min_value=0, value=0, step=1, key=f"{key}_mseed")
    swaps, swap_from = "", "trained"
    if allow_swaps:
        choices = ["stem", "pos_embedding", "class_token", "ln_1"] if spec.family in ("vit", "ffvit") else ["stem"]
        swaps_list = st.multiselect("Swap in trained parts", choices,
                                    default=[x for x in pre.get("swaps", "").split(",") if x in choices],
                                    key=f"{key}_swaps",
                                    help="Copied from the trained weights (or a checkpoint) into this model.")
        swaps = ",".join(swaps_list)
        if swaps_list:
            src = st.radio("Swap from", ["trained", "untrained", "checkpoint file"], horizontal=True,
                           key=f"{key}_swapfrom")
            if src == "checkpoint file":
                src = checkpoint_input("Swap source checkpoint", f"{key}_swapckpt")
                if src is None:
                    return None
            swap_from = src
    try:
        return make_ref(name, weights, seed=int(seed), swaps=swaps, swap_from=swap_from, **arch)
    except VitrepError as e:
        st.error(str(e))
        return None


def layer_picker(key: str, ref, default: str | None = None) -> str:
    """Every tap of the model, in forward order."""
    fam, depth = ref.spec.family, ref.num_blocks
    taps = [t for t in available_taps(fam, depth) if "." not in t]  # ResNet: stages, not single blocks
    default = parse_tap(default or 1, fam, depth)
    return st.selectbox("Layer", taps, index=taps.index(default) if default in taps else 0,
                        format_func=describe_tap, key=f"{key}_layer")


def surgery_picker(key: str, ref, pre: dict | None = None) -> tuple[str, str]:
    pre = pre or {}
    comps = COMPONENTS[ref.spec.family]
    remove = st.multiselect("Remove components", comps, default=[c for c in pre.get("remove", "").split(",") if c in comps],
                            key=f"{key}_remove")
    blocks = st.text_input("…in blocks (e.g. 1-4,7; empty = all)", pre.get("blocks", ""), key=f"{key}_blocks")
    return ",".join(remove), blocks


def schedule_inputs(key: str, steps: int = DEFAULT_STEPS, lr: float = 1.0, lr_end: float = 0.05,
                    pre: dict | None = None) -> dict:
    """Steps, learning rate, loss, blur, seed and the switches, as ReconstructConfig keywords."""
    pre = pre or {}
    steps, lr, lr_end = pre.get("steps", steps), pre.get("lr_start", lr), pre.get("lr_end", lr_end)
    c1, c2, c3 = st.columns(3)
    kw = {"steps": int(c1.number_input("Steps", 1, 200_000, steps, key=f"{key}_steps")),
          "lr_start": c2.number_input("Learning rate (start)", 0.0, 1e6, lr, format="%.4g", key=f"{key}_lr"),
          "lr_end": c3.number_input("Learning rate (end)", 0.0, 1e6, lr_end, format="%.4g", key=f"{key}_lrend")}
    with st.expander("Loss, blur, seed and switches"):
        c1, c2, c3 = st.columns(3)
        kw["loss"] = c1.selectbox("Loss", ["l1", "l2"], key=f"{key}_loss", help="l1: s·Σ|t−O| (the page's)")
        kw["loss_scale"] = c2.number_input("Loss scale s", 0.0, 1e6, 0.05, format="%.4g", key=f"{key}_scale")
        kw["seed"] = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}_seed"))
        c1, c2, c3 = st.columns(3)
        kw["blur_start"] = c1.number_input("Blur σ (start; 0 = off)", 0.0, 10.0, 2.4, key=f"{key}_blur")
        kw["blur_end"] = c2.number_input("Blur σ (end)", 0.0, 10.0, 0.4, key=f"{key}_blurend")
        kw["report_every"] = int(c3.number_input("Report every (steps)", 1, 10_000, 10, key=f"{key}_every"))
        kw["pos_embed"] = st.toggle("Add the positional embedding (off = the page's figures)", pre.get("pos_embed", True),
                                    key=f"{key}_pos")
        kw["normalize"] = st.toggle("ImageNet-normalise the input (the page fed raw pixels)", False, key=f"{key}_norm")
        kw["clamp"] = st.toggle("Clamp to [0, 1] after every step", False, key=f"{key}_clamp")
    return kw


class Live:
    """Progress bar, live image and curves, fed by the engine's callback."""

    def __init__(self, labels: list[str], total: int, show_image: bool = True) -> None:
        self.labels, self.total = labels, total
        self.bar = st.progress(0.0, text="starting…")
        self.image = st.empty() if show_image else None
        self.chart = st.empty()
        self.rows: list[dict] = []
        self.last_draw = 0.0

    def __call__(self, p: Progress) -> None:
        frac = p.step / max(1, p.total)
        left = (p.total - p.step) / p.steps_per_second if p.steps_per_second > 0 else float("nan")
        self.bar.progress(min(1.0, frac), text=f"step {p.step}/{p.total} · {p.steps_per_second:.1f} steps/s · "
                                               f"{'~%.0f s left' % left if left == left else 'warming up'}")
        st.session_state["_last_progress"] = {"step": p.step, "rows": p.rows, "image": p.images[0]}
        now = time.perf_counter()
        if now - self.last_draw > 0.4 or p.step == p.total:  # do not flood the browser
            self.last_draw = now
            if self.image is not None and p.images:
                self.image.image(p.images[0], caption=f"step {p.step}", width=280)

    def done(self) -> None:
        """The run is over: the final result replaces the live preview."""
        self.bar.empty()
        if self.image is not None:
            self.image.empty()


def curves_figure(results: list[tuple[str, Result]]) -> go.Figure:
    """Embedding distance (with each run's a' baseline dashed), input distance and PSNR against step."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("m_g (dashed: m_r)", "‖a − a_g‖", "PSNR (dB)"))
    for i, (label, r) in enumerate(results):
        color = f"hsl({(i * 67) % 360},65%,45%)"
        c = r.curves
        fig.add_trace(go.Scatter(x=c["step"], y=c["embedding_distance"], name=label, line=dict(color=color),
                                 legendgroup=label), 1, 1)
        fig.add_trace(go.Scatter(x=[c["step"][0], c["step"][-1]], y=[r.baseline["embedding_distance"]] * 2,
                                 line=dict(color=color, dash="dash"), showlegend=False, legendgroup=label,
                                 name=f"{label} m_r"), 1, 1)
        fig.add_trace(go.Scatter(x=c["step"], y=c["input_distance"], line=dict(color=color), showlegend=False,
                                 legendgroup=label), 1, 2)
        fig.add_trace(go.Scatter(x=c["step"], y=c["psnr"], line=dict(color=color), showlegend=False,
                                 legendgroup=label), 1, 3)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def verdict(r: Result) -> str:
    f, b = r.final, r.baseline
    ok = "reaches" if r.success else "does not reach"
    return (f"{r.status.capitalize()} after {r.steps} steps ({r.steps_per_second:.1f} steps/s"
            f"{', from the memo' if r.from_cache else ''}). The reconstruction **{ok}** the page's bar: "
            f"m_g = {f['embedding_distance']:.4g} {'<' if r.success else '≥'} m_r = {b['embedding_distance']:.4g} "
            f"(the distance a barely visible N(0, 1/18) change makes). Input distance {f['input_distance']:.4g}, "
            f"PSNR {f['psnr']:.2f} dB.")


def downloads(r: Result, key: str) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.download_button("reconstruction.png", png_bytes(r.image), "reconstruction.png", "image/png", key=f"{key}_dl1")
    c2.download_button("target.png", png_bytes(r.target), "target.png", "image/png", key=f"{key}_dl2")
    c3.download_button("curves.csv", r.curves_csv(), "curves.csv", "text/csv", key=f"{key}_dl3")
    c4.download_button("result.json (rerun with --config)", json.dumps(r.summary(), indent=2), "result.json",
                       "application/json", key=f"{key}_dl4")
