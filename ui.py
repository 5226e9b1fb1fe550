"""Shared Streamlit pieces for the dashboard pages: pickers, live progress, plots, downloads.

Pages stay thin (widgets -> config -> engine -> plots); all computation is in
``vitrep``.  Every user error is shown as its one sentence with ``st.error``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
import weakref
import time
from pathlib import Path
from typing import Optional

import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

from vitrep import budget
from vitrep.cache import get_memo
from vitrep.errors import VitrepError
from vitrep.images import SAMPLES, fit_image, load_image, sample_path, to_pil, to_tensor
from vitrep.models import SPECS, cache_bytes, hub_checkpoint_dir, make_ref, trained_file_local
from vitrep.reconstruct import Progress, Result
from vitrep.taps import describe_tap

ON_GPU = torch.cuda.is_available()
DEFAULT_STEPS = 1500 if ON_GPU else 150  # Streamlit Cloud (CPU): a layer-1 run well under a minute
CHECKPOINT_DIR = Path(tempfile.gettempdir()) / "vitrep-checkpoints"
MODEL_LABELS = {name: f"{name}: {spec.description}" for name, spec in SPECS.items()}
IMAGE_TYPES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
PUBLIC_QUEUE_LIMIT = 8  # waiting runs a public server accepts
PUBLIC_CHECKPOINT_MB = 100  # largest checkpoint upload a public server takes
PUBLIC_MAX_STEPS = 1000  # most steps a public server runs for one reconstruction
PUBLIC_IMAGE_MB = 8  # largest image upload a public server takes


def public_mode() -> bool:
    """``VITREP_PUBLIC=1`` in the environment or in Streamlit's secrets: a server open to strangers."""
    try:
        secret = st.secrets.get("VITREP_PUBLIC")
    except Exception:  # no secrets file
        secret = None
    if secret is not None:
        return str(secret).strip().lower() in ("1", "true", "yes", "on")
    return budget.public_mode()


def error(e: VitrepError) -> None:
    """A user's error as its one sentence, in the dashboard's words."""
    st.error(e.say("dashboard"))


@st.cache_resource
def memo():
    """The disk memo, shared by every session of this server; its computations are logged to stderr.

    Public mode is settled first: reading Streamlit's secrets puts them into the environment, where
    the engine reads its limits (a public memo is bounded to 1 GiB unless VITREP_MEMO_MB says).
    """
    public_mode()
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
        st.markdown(f"**Memo**: {len(m)} runs, {m.volume() / 2**20:.1f} MB of {m.size_limit / 2**20:.0f} MB "
                    f"(oldest dropped beyond)")
        st.caption(f"Computed by this server: {m.computations} · memo hits: {m.hits}")
        limit_mb = budget.memory_budget_mb()
        held = cache_bytes()
        if limit_mb or held:
            st.caption(f"Models in memory: {held / 2**20:.0f} MB" + (f" of a {limit_mb:,} MB budget" if limit_mb else ""))
        if public_mode():
            st.caption("Public mode: uploads only, capped steps and sizes; the memo is shared by everyone.")
        elif st.button("Clear memo", key="clear_memo"):  # changes what every session sees: local mode only
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
        # every file is taken and checked here, so a refusal is a sentence on the page, not a tooltip
        up = st.file_uploader(f"Upload an image ({IMAGE_TYPES})", key=f"{key}_upload")
        if up is None:
            st.info("Upload an image, or pick a sample.")
            return None
        if public_mode() and up.size > PUBLIC_IMAGE_MB * 2**20:
            st.error(f"{up.name} is {up.size / 2**20:.0f} MB, more than this public server's {PUBLIC_IMAGE_MB} MB "
                     f"limit for images.")
            return None
        return to_tensor(fit_image(load_image(up.getvalue()), size, resize)), up.name
    except VitrepError as e:
        error(e)
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_image(path: str):
    return load_image(path)


def checkpoint_input(label: str, key: str) -> Optional[str]:
    """A checkpoint as a path on this machine (local mode only) or an upload; the path to load, or None.

    Uploads are written to a folder of this browser session, removed when the session ends. A public
    server takes uploads only, up to ``PUBLIC_CHECKPOINT_MB``: a stranger must not name server files.
    """
    if not public_mode():
        path = st.text_input(f"{label}: path on this machine", "", key=f"{key}_path",
                             placeholder="/path/to/weights.safetensors or .pt")
        if path.strip():
            return path.strip()
    cap = f"up to {PUBLIC_CHECKPOINT_MB} MB" if public_mode() else "small files"
    up = st.file_uploader(f"{'Upload' if public_mode() else '…or upload'} a checkpoint (.safetensors, .pt, .pth "
                          f"or .bin; {cap})", key=key)
    if up is None:
        return None
    if not up.name.lower().endswith((".safetensors", ".pt", ".pth", ".bin")):
        st.error(f"{up.name} is not a checkpoint file: give a .safetensors, .pt, .pth or .bin file.")
        return None
    if public_mode() and up.size > PUBLIC_CHECKPOINT_MB * 2**20:
        st.error(f"{up.name} is {up.size / 2**20:.0f} MB, more than this public server's {PUBLIC_CHECKPOINT_MB} MB "
                 f"limit for checkpoints; run vitrep on your own machine for larger ones.")
        return None
    return _save_checkpoint(up)


class _SessionFolder:
    """A temporary folder owned by one browser session: removed when the session's state is dropped."""

    def __init__(self) -> None:
        CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=CHECKPOINT_DIR))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)


def session_folder() -> Path:
    if "_vitrep_folder" not in st.session_state:
        st.session_state["_vitrep_folder"] = _SessionFolder()
    return st.session_state["_vitrep_folder"].path


def _save_checkpoint(up) -> str:
    data = up.getvalue()
    suffix = ".safetensors" if up.name.endswith(".safetensors") else ".pt"
    path = session_folder() / (hashlib.sha256(data).hexdigest()[:16] + suffix)
    if not path.exists():
        path.write_bytes(data)
    return str(path)


@st.cache_data(show_spinner=False)
def over_budget() -> dict[str, str]:
    """Models that do not fit this server's memory budget, with the reason (none without a budget)."""
    out = {}
    for name in SPECS:
        fits, why = budget.model_fits(make_ref(name))
        if not fits:
            out[name] = why
    return out


def weights_home(spec) -> str:
    """Where a spec's trained weights file goes (torch hub's checkpoints folder, or the Hugging Face cache)."""
    if spec.trained is None:
        return ""
    return str(hub_checkpoint_dir()) if spec.trained.kind == "torchvision" else "the Hugging Face cache"


def model_picker(key: str, default: str = "vit_b_32", allow_swaps: bool = True, models=None, pre: dict | None = None,
                 trained_wanted: str = ""):
    """Model, weights (untrained / trained / checkpoint file), seed, architecture, swaps -> ModelRef or None.

    ``pre`` fills the widgets (a preset's panel): model, weights, swaps, arch.  A page that wants
    trained weights asks for them in ``pre``; where they are not on this machine the picker opens on
    untrained weights instead (and says ``trained_wanted`` and how to get them), so a first view never
    errors offline.
    """
    pre = pre or {}
    names = list(models or SPECS)
    local_only = over_budget() if public_mode() else {}
    names = [n for n in names if n not in local_only]
    default = pre.get("model", default)
    name = st.selectbox("Model", names, index=names.index(default) if default in names else 0,
                        format_func=lambda n: MODEL_LABELS[n], key=f"{key}_model")
    if local_only:
        st.caption("Local only (run vitrep on your own machine for these): "
                   + "; ".join(f"{n}: {why}" for n, why in local_only.items()))
    spec = SPECS[name]
    options = ["untrained", "trained", "checkpoint file"] if spec.trained else ["untrained", "checkpoint file"]
    w0 = pre.get("weights", "untrained")
    local = spec.trained is not None and trained_file_local(spec) is not None
    if w0 == "trained" and not local:
        w0 = "untrained"  # open on what works offline; trained weights stay one click away
        if trained_wanted and spec.trained is not None:
            st.info(f"{trained_wanted} Trained weights for {name} are not on this machine yet: choose 'trained' "
                    f"to download {spec.trained.filename} (it goes into {weights_home(spec)}), or 'checkpoint "
                    f"file' to use your own. Untrained weights are shown meanwhile.")
    weights = st.radio("Weights", options, index=options.index(w0) if w0 in options else 0, horizontal=True,
                       key=f"{key}_weights")
    if weights == "checkpoint file":
        weights = checkpoint_input("Checkpoint (.safetensors or a torch state_dict)", f"{key}_ckpt")
        if weights is None:
            st.info("Give a checkpoint for this architecture.")
            return None
    elif weights == "trained" and not local:
        st.caption(f"{spec.trained.filename} is not on this machine yet; it downloads on first use "
                   f"(into {weights_home(spec)}).")
    arch = {}
    if spec.configurable:
        cols = st.columns(len(spec.arch_defaults))
        for col, (k, v) in zip(cols, spec.arch_defaults):
            v = dict(pre.get("arch", ())).get(k, v)
            arch[k] = col.number_input(k, min_value=1, value=int(v), step=1, key=f"{key}_{k}")
    seed = st.number_input("Model seed (untrained init)", min_value=0, value=0, step=1, key=f"{key}_mseed")
    swaps, swap_from = "", "trained"
    if allow_swaps:
        choices = list(spec.adapter.swap_aliases)
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
        error(e)
        return None


def layer_picker(key: str, ref, default: str | None = None) -> str:
    """Every tap of the model, in forward order."""
    adapter, depth = ref.adapter, ref.num_blocks
    taps = adapter.picker_taps(depth)
    default = adapter.parse_tap(default or 1, depth)
    return st.selectbox("Layer", taps, index=taps.index(default) if default in taps else 0,
                        format_func=describe_tap, key=f"{key}_layer")


def surgery_picker(key: str, ref, pre: dict | None = None) -> tuple[str, str]:
    pre = pre or {}
    comps = ref.adapter.components
    remove = st.multiselect("Remove components", comps, default=[c for c in pre.get("remove", "").split(",") if c in comps],
                            key=f"{key}_remove")
    blocks = st.text_input("…in blocks (e.g. 1-4,7; empty = all)", pre.get("blocks", ""), key=f"{key}_blocks")
    return ",".join(remove), blocks


STEP_CHOICES = {"auto": "calibrated for this model and layer (Adam)", "adam": "Adam with my lr",
                "gd": "the page's plain steps a − lr·g, my lr"}


def schedule_inputs(key: str, steps: int = DEFAULT_STEPS, pre: dict | None = None) -> dict:
    """Steps, optimiser and step sizes, loss, blur, seed and the switches, as ReconstructConfig keywords.

    By default the step sizes are the calibrated ones for the model and the layer (``optimizer``
    ``auto``, no lr): no tuning needed.  Choosing Adam or plain steps uses the two lr boxes.
    """
    pre = pre or {}
    steps = pre.get("steps", steps)
    c1, c2 = st.columns([1, 3])
    top = PUBLIC_MAX_STEPS if public_mode() else 200_000
    steps = int(c1.number_input("Steps", 1, top, min(steps, top), key=f"{key}_steps",
                                help=f"At most {top:,} on this public server." if public_mode() else None))
    opt0 = pre.get("optimizer", "auto" if "lr_start" not in pre else "gd")
    opt = c2.selectbox("Step sizes", list(STEP_CHOICES), index=list(STEP_CHOICES).index(opt0),
                       format_func=STEP_CHOICES.get, key=f"{key}_opt",
                       help="Calibrated: Adam with the step sizes benchmarks/calibrate.py chose for this model family "
                            "and depth (README, Step sizes). The lr boxes apply to the other two choices.")
    c3, c4 = st.columns(2)
    lr = c3.number_input("lr at the start (not for calibrated)", 0.0, 1e6, float(pre.get("lr_start", 0.1)),
                         format="%.4g", key=f"{key}_lr")
    lr_end = c4.number_input("lr at the end (not for calibrated)", 0.0, 1e6, float(pre.get("lr_end", 0.01)),
                             format="%.4g", key=f"{key}_lrend")
    kw = {"steps": steps, "optimizer": opt}
    if opt != "auto":
        kw.update(lr_start=lr, lr_end=lr_end)
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
        kw["backoff"] = st.toggle("Step back at a blow-up (return to the best image at a quarter of the step)", True,
                                  key=f"{key}_backoff")
    return kw


class QueueNote:
    """Tells a waiting session its place in the device queue (an ``on_wait`` callback); clears itself."""

    def __init__(self) -> None:
        self.slot = st.empty()

    def __call__(self, place: int, queued: int) -> None:
        self.slot.info(f"Queued: {place} run{'s' if place != 1 else ''} ahead of yours on this server's "
                       f"{'GPU' if ON_GPU else 'CPU'}. Yours starts when they finish.")

    def clear(self) -> None:
        self.slot.empty()


def queue_limit() -> Optional[int]:
    """How many waiting runs a public server accepts before it asks people to come back (None: no limit)."""
    return PUBLIC_QUEUE_LIMIT if public_mode() else None


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

    def __call__(self, p: Progress, batch: int = 0) -> None:
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
                                                                         "input_distance", "psnr")})
                if not h["step"] or h["step"][-1] != row["step"]:
                    for k in h:
                        h[k].append(row[k])
        st.session_state["_last_progress"] = {"step": p.step, "rows": p.rows, "image": p.images[0]}
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


def _log_axis(fig: go.Figure, col: int) -> None:
    fig.update_yaxes(type="log", row=1, col=col, dtick="D2", tickformat=".3~g", exponentformat="none",
                     tickfont=dict(size=12))


def curves_figure_from(series: list[tuple[str, dict, Optional[float]]], live: bool = False) -> go.Figure:
    """``(label, curves, m_r)`` -> m_g with its m_r line, input distance and PSNR against step."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("m_g (dashed: the bar m_r)", "‖a − a_g‖ (input distance)",
                                                        "PSNR (dB)"))
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
        fig.add_trace(go.Scatter(x=c["step"], y=c["psnr"], line=dict(color=color), showlegend=False,
                                 legendgroup=label), 1, 3)
    _log_axis(fig, 1)
    _log_axis(fig, 2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
                      uirevision="live" if live else None)
    return fig


def curves_figure(results: list[tuple[str, Result]]) -> go.Figure:
    """Embedding distance (with each run's a' baseline dashed), input distance and PSNR against step."""
    return curves_figure_from([(label, r.curves, r.baseline["embedding_distance"]) for label, r in results])


def verdict(r: Result) -> str:
    f, b = r.final, r.baseline
    ok = "reaches" if r.success else "does not reach"
    c = r.config
    steps = (f"{c.optimizer}, lr {c.lr_start:.3g} → {c.lr_end:.3g}")
    back = (f" A blow-up sent it back to its best image {r.backoffs} time(s), each time at a quarter of the step."
            if r.backoffs else "")
    return (f"{r.status.capitalize()} after {r.steps} steps ({r.steps_per_second:.1f} steps/s"
            f"{', from the memo' if r.from_cache else ''}; {steps}). The reconstruction **{ok}** the page's bar: "
            f"m_g = {f['embedding_distance']:.4g} {'<' if r.success else '≥'} m_r = {b['embedding_distance']:.4g} "
            f"(the distance a barely visible N(0, 1/18) change makes). Input distance {f['input_distance']:.4g}, "
            f"PSNR {f['psnr']:.2f} dB.{back}")


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
