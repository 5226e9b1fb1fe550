"""The input widgets: image, checkpoint, model, layer, surgery and schedule pickers.

Every default and help text of a reconstruction option comes from its field of
:class:`vitrep.config.ReconstructConfig` (a test checks the widgets against them).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Optional

import streamlit as st
import torch

from vitrep import limits
from vitrep.errors import VitrepError
from vitrep.images import SAMPLES, fit_image, load_image, sample_path, to_tensor
from vitrep.models.families.timm_models import is_timm
from vitrep.models.registry import SPECS, get_spec, make_ref
from vitrep.models.weights import trained_file_local
from vitrep.models.taps import describe_tap
from vitrep.config import default_of, options

from . import keys
from .server import (DEFAULT_STEPS, IMAGE_TYPES, MODEL_LABELS, PUBLIC_CHECKPOINT_MB, PUBLIC_IMAGE_MB,
                     PUBLIC_MAX_STEPS, error, over_budget, public_mode, weights_home)


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
        up = st.file_uploader(f"Upload an image ({IMAGE_TYPES})", key=f"{key}_upload",
                              max_upload_size=PUBLIC_IMAGE_MB if public_mode() else None)
        if up is None:
            st.info("Upload an image, or pick a sample.")
            return None
        if public_mode() and up.size > PUBLIC_IMAGE_MB * 2**20:
            st.error(f"{up.name} is {up.size / 2**20:.0f} MB, more than this public server's {PUBLIC_IMAGE_MB} MB "
                     f"limit for images.")
            return None
        img = load_image(up.getvalue())
        return to_tensor(fit_image(img, size, _fit_choice(key, img, size, resize))), up.name
    except VitrepError as e:
        error(e)
        return None


FITS = {"crop": "crop the centre", "pad": "pad it (its mean colour)", "stretch": "stretch it"}


def _fit_choice(key: str, img, size: int, default: str) -> str:
    """For a picture that is not square: how to fit it (crop, pad or stretch), said in words."""
    w, h = img.size
    if w == h:
        return default
    how = st.radio(f"This image is {w}×{h}, the model takes {size}×{size}: fit it by", list(FITS), horizontal=True,
                   index=list(FITS).index(default) if default in FITS else 0, format_func=FITS.get, key=f"{key}_fit")
    side = min(w, h) if how == "crop" else max(w, h)
    st.caption({"crop": f"The centre {side}×{side} is kept and scaled to {size}×{size}; the rest is cut off.",
                "pad": f"The whole image is scaled into {size}×{size}; the {'sides' if h > w else 'top and bottom'} "
                       f"are filled with its mean colour.",
                "stretch": f"The whole image is squeezed to {size}×{size} (the write-up's plain resize)."}[how])
    return how


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
                          f"or .bin; {cap})", key=key, max_upload_size=PUBLIC_CHECKPOINT_MB if public_mode() else None)
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

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)


OUTPUT_DIR = Path(tempfile.gettempdir()) / "vitrep-outputs"  # the sessions' output folders (figure runs)


def session_folder() -> Path:
    """This session's upload folder, inside the engine's upload root (public mode takes weights only from there)."""
    if keys.SESSION_FOLDER not in st.session_state:
        st.session_state[keys.SESSION_FOLDER] = _SessionFolder(limits.upload_root())
    return st.session_state[keys.SESSION_FOLDER].path


def session_output_folder(name: str) -> Path:
    """An empty folder ``name`` for a run's files (a figure's PNGs and JSON), owned by this browser session.

    It lives in the session's output folder, which is removed with everything in it when the session
    ends, so a page that writes files per run (instead of a ``tempfile.mkdtemp`` per run, which stays
    until the machine is cleaned) leaves nothing behind.  Asking again for the same ``name`` empties
    it first: a rerun of one figure replaces its files rather than adding a folder.
    """
    if keys.SESSION_OUTPUT not in st.session_state:
        st.session_state[keys.SESSION_OUTPUT] = _SessionFolder(OUTPUT_DIR)
    root = st.session_state[keys.SESSION_OUTPUT].path
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name)).strip(".") or "run"
    out = root / safe[:100]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def _save_checkpoint(up) -> str:
    data = up.getvalue()
    suffix = ".safetensors" if up.name.endswith(".safetensors") else ".pt"
    path = session_folder() / (hashlib.sha256(data).hexdigest()[:16] + suffix)
    if not path.exists():
        path.write_bytes(data)
    return str(path)


def model_picker(key: str, default: str = "vit_b_32", allow_swaps: bool = True, models=None, pre: dict | None = None,
                 trained_wanted: str = ""):
    """Model, weights (untrained / trained / checkpoint file), seed, architecture, swaps -> ModelRef or None.

    ``pre`` fills the widgets (a preset's panel): model, weights, swaps, arch.  A page that wants
    trained weights asks for them in ``pre``; where they are not on this machine the picker opens on
    untrained weights instead (and says ``trained_wanted`` and how to get them), so a first view never
    errors offline.
    """
    pre = pre or {}
    name = _model_name(key, default, models, pre)
    if name is None:
        return None
    try:
        spec = get_spec(name)
    except VitrepError as e:
        error(e)
        return None
    weights = _weights_input(key, name, spec, pre, trained_wanted)
    if weights is None:
        return None
    arch = _arch_inputs(key, spec, pre)
    seed = st.number_input("Model seed (untrained init)", min_value=0, value=0, step=1, key=f"{key}_mseed")
    swapped = _swap_inputs(key, spec, pre) if allow_swaps else ("", "trained")
    if swapped is None:
        return None
    try:
        return make_ref(name, weights, seed=int(seed), swaps=swapped[0], swap_from=swapped[1], **arch)
    except VitrepError as e:
        error(e)
        return None


def _model_name(key: str, default: str, models, pre: dict) -> str | None:
    """The model menu (the registry's, a timm name by search; a public server's over-budget ones left out)."""
    names = list(models or SPECS)
    local_only = over_budget() if public_mode() else {}
    names = [n for n in names if n not in local_only]
    default = pre.get("model", default)
    if models is None:
        names.append(TIMM)
    if is_timm(default):
        default = TIMM
    name = st.selectbox("Model", names, index=names.index(default) if default in names else 0,
                        format_func=lambda n: MODEL_LABELS.get(n, n), key=f"{key}_model")
    if local_only:
        st.caption("Local only (run vitrep on your own machine for these): "
                   + "; ".join(f"{n}: {why.rstrip('.')}" for n, why in local_only.items()) + ".")
    return timm_picker(key, pre.get("model", "")) if name == TIMM else name


def _weights_input(key: str, name: str, spec, pre: dict, trained_wanted: str) -> str | None:
    """untrained, trained or a checkpoint's path; None while a checkpoint is asked for and not given."""
    choices = ["untrained", "trained", "checkpoint file"] if spec.trained else ["untrained", "checkpoint file"]
    w0 = pre.get("weights", "untrained")
    local = spec.trained is not None and trained_file_local(spec) is not None
    if w0 == "trained" and not local:
        w0 = "untrained"  # open on what works offline; trained weights stay one click away
        if trained_wanted and spec.trained is not None:
            st.info(f"{trained_wanted} Trained weights for {name} are not on this machine yet: choose 'trained' "
                    f"to download {spec.trained.filename} (it goes into {weights_home(spec)}), or 'checkpoint "
                    f"file' to use your own. Untrained weights are shown meanwhile.")
    weights = st.radio("Weights", choices, index=choices.index(w0) if w0 in choices else 0, horizontal=True,
                       key=f"{key}_weights")
    if weights == "checkpoint file":
        weights = checkpoint_input("Checkpoint (.safetensors or a torch state_dict)", f"{key}_ckpt")
        if weights is None:
            st.info("Give a checkpoint for this architecture.")
    elif weights == "trained" and not local:
        st.caption(f"{spec.trained.filename} is not on this machine yet; it downloads on first use "
                   f"(into {weights_home(spec)}).")
    return weights


def _arch_inputs(key: str, spec, pre: dict) -> dict:
    """A configurable architecture's numbers, within the engine's bounds (:func:`vitrep.limits.arch_bounds`)."""
    arch = {}
    if spec.configurable:
        cols = st.columns(len(spec.arch_defaults))
        public_mode()  # settles the mode: the bounds below are the engine's
        bounds = limits.arch_bounds(dict(spec.arch_defaults))
        for col, (k, v) in zip(cols, spec.arch_defaults):
            lo, hi = bounds[k]
            v = min(max(int(dict(pre.get("arch", ())).get(k, v)), lo), hi)
            arch[k] = col.number_input(k, min_value=lo, max_value=hi, value=v, step=1, key=f"{key}_{k}",
                                       help=f"{lo:,} to {hi:,} on this public server." if public_mode() else None)
    return arch


def _swap_inputs(key: str, spec, pre: dict) -> tuple[str, str] | None:
    """(swaps, swap source); None while a swap source checkpoint is asked for and not given."""
    choices = list(spec.adapter.swap_aliases)
    swaps = st.multiselect("Swap in trained parts", choices,
                           default=[x for x in pre.get("swaps", "").split(",") if x in choices],
                           key=f"{key}_swaps", help="Copied from the trained weights (or a checkpoint) into this model.")
    if not swaps:
        return "", "trained"
    src = st.radio("Swap from", ["trained", "untrained", "checkpoint file"], horizontal=True, key=f"{key}_swapfrom")
    if src == "checkpoint file":
        src = checkpoint_input("Swap source checkpoint", f"{key}_swapckpt")
    return None if src is None else (",".join(swaps), src)


TIMM = "timm model by name…"


def timm_picker(key: str, default: str = "") -> str | None:
    """A search over timm's model names; the chosen one as ``timm:NAME`` (None until one is chosen)."""
    from vitrep.models.families.timm_models import PREFIX, SUPPORTED, search

    query = st.text_input("Search timm models", default[len(PREFIX):].split(".")[0] if is_timm(default) else "dino",
                          key=f"{key}_timm_q", help=f"vitrep takes apart the timm classes {', '.join(SUPPORTED)}.")
    found = search(query, limit=200)
    if not found:
        st.info(f"No timm model name contains {query!r}.")
        return None
    return st.selectbox(f"timm model ({len(found)} found)", found, key=f"{key}_timm",
                        index=found.index(default) if default in found else 0,
                        format_func=lambda n: n[len(PREFIX):])


def layer_picker(key: str, ref, default: str | None = None) -> str:
    """Every tap of the model, in forward order."""
    adapter, depth = ref.adapter, ref.num_blocks
    taps = adapter.picker_taps(depth)
    default = adapter.parse_tap(default or 1, depth)
    return st.selectbox("Layer", taps, index=taps.index(default) if default in taps else 0,
                        format_func=describe_tap, key=f"{key}_layer")


def surgery_picker(key: str, ref, pre: dict | None = None) -> tuple[list[str], str]:
    """The components to remove (a list, in the adapter's order) and the blocks' text."""
    pre = pre or {}
    comps = ref.adapter.components
    remove = st.multiselect("Remove components", comps, default=[c for c in pre.get("remove", "").split(",") if c in comps],
                            key=f"{key}_remove")
    blocks = st.text_input("…in blocks (e.g. 1-4,7; empty = all)", pre.get("blocks", ""), key=f"{key}_blocks")
    return remove, blocks


OPTIONS = {f.name: f for f in options()}  # the config's fields: defaults and help for the widgets
HELP = {name: f.metadata["help"] for name, f in OPTIONS.items()}
STEP_CHOICES = {"adam": "Adam: fast, step sizes in pixel units (the default)",
                "gd": "plain GD a − lr·g: the paper's method"}


def schedule_inputs(key: str, steps: int = DEFAULT_STEPS, pre: dict | None = None, ref=None,
                    layer=None) -> dict:
    """Steps, optimiser and step sizes, loss, blur, seed and the switches, as ReconstructConfig keywords.

    By default the step sizes are the calibrated ones for the optimiser, the model and the layer (no
    lr given): no tuning needed, and the greyed boxes show them (for ``ref`` at ``layer``).  "My own step
    sizes" uses the two lr boxes.
    """
    from vitrep.calibration import default_optimizer

    pre = pre or {}
    steps = pre.get("steps", steps)
    c1, c2 = st.columns([1, 3])
    top = PUBLIC_MAX_STEPS if public_mode() else 200_000
    steps = int(c1.number_input("Steps", 1, top, min(steps, top), key=f"{key}_steps",
                                help=f"At most {top:,} on this public server." if public_mode() else None))
    opt0 = pre.get("optimizer", default_optimizer())
    opt = c2.selectbox("Optimizer", list(STEP_CHOICES), index=list(STEP_CHOICES).index(opt0),
                       format_func=STEP_CHOICES.get, key=f"{key}_opt",
                       help="Plain GD is the paper's method, and what its argument about conditioning is about; Adam "
                            "rescales each pixel's step by its gradient history, which is faster and can hide a "
                            "poorly conditioned layer. Both take step sizes calibrated per model family and depth "
                            "(docs/method.md, Step sizes) unless you give your own.")
    own = st.toggle("My own step sizes", "lr_start" in pre, key=f"{key}_own",
                    help="Off: the calibrated step sizes for this optimizer, model and layer.")
    c3, c4 = st.columns(2)
    if own or ref is None:
        lr = c3.number_input("lr at the start", 0.0, 1e6, float(pre.get("lr_start", 0.1)), format="%.4g",
                             key=f"{key}_lr", disabled=not own)
        lr_end = c4.number_input("lr at the end", 0.0, 1e6, float(pre.get("lr_end", 0.01)), format="%.4g",
                                 key=f"{key}_lrend", disabled=not own)
    else:  # the numbers the run will use: calibrated for this optimizer, model and layer
        lr, lr_end, where = _calibrated(ref, layer, opt)
        c3.number_input(f"lr at the start (calibrated: {opt}, {where})", value=lr, format="%.4g", disabled=True,
                        key=f"{key}_lrcal_{opt}_{lr}")
        c4.number_input("lr at the end (calibrated)", value=lr_end, format="%.4g", disabled=True,
                        key=f"{key}_lrendcal_{opt}_{lr_end}")
    kw = {"steps": steps, "optimizer": opt}
    if own:
        kw.update(lr_start=lr, lr_end=lr_end)
    with st.expander("Loss, blur, seed and switches"):
        kw.update(_more_inputs(key, pre))
    return kw


def _calibrated(ref, layer, optimizer: str) -> tuple[float, float, str]:
    """The calibrated step sizes a run of ``ref`` at ``layer`` under ``optimizer`` takes, and the tap."""
    from vitrep.calibration import default_schedule
    from vitrep.models.taps import describe_tap

    try:
        tap = ref.adapter.parse_tap(layer if layer is not None else 1, ref.num_blocks)
    except VitrepError:
        tap = ref.adapter.parse_tap(1, ref.num_blocks)
    _, lr, lr_end = default_schedule(ref, tap, optimizer)
    return lr, lr_end, describe_tap(tap)


def _more_inputs(key: str, pre: dict) -> dict:
    """Loss, blur, seed, reporting, the switches and the precision, as ReconstructConfig keywords."""
    kw = {}
    c1, c2, c3 = st.columns(3)
    loss = OPTIONS["loss"]
    kw["loss"] = c1.selectbox("Loss", list(loss.metadata["choices"]),
                              index=list(loss.metadata["choices"]).index(default_of("loss")), key=f"{key}_loss",
                              help=HELP["loss"])
    kw["loss_scale"] = c2.number_input("Loss scale s", 0.0, 1e6, default_of("loss_scale"), format="%.4g",
                                       key=f"{key}_scale", help=HELP["loss_scale"])
    kw["seed"] = int(c3.number_input("Seed", 0, 2**31 - 1, default_of("seed"), key=f"{key}_seed", help=HELP["seed"]))
    c1, c2, c3 = st.columns(3)
    kw["blur_start"] = c1.number_input("Blur σ (start; 0 = off)", 0.0, 10.0, default_of("blur_start"),
                                       key=f"{key}_blur", help=HELP["blur_start"])
    kw["blur_end"] = c2.number_input("Blur σ (end)", 0.0, 10.0, default_of("blur_end"), key=f"{key}_blurend",
                                     help=HELP["blur_end"])
    kw["report_every"] = int(c3.number_input("Report every (steps)", 1, 10_000, default_of("report_every"),
                                             key=f"{key}_every", help=HELP["report_every"]))
    kw["pos_embed"] = st.toggle("Add the positional embedding (off = the paper's figures)",
                                pre.get("pos_embed", default_of("pos_embed")), key=f"{key}_pos",
                                help=HELP["pos_embed"])
    kw["normalize"] = st.toggle("ImageNet-normalise the input (the paper fed raw pixels)", default_of("normalize"),
                                key=f"{key}_norm", help=HELP["normalize"])
    kw["clamp"] = st.toggle("Clamp to [0, 1] after every step", default_of("clamp"), key=f"{key}_clamp",
                            help=HELP["clamp"])
    kw["backoff"] = st.toggle("Step back at a blow-up (return to the best image at a quarter of the step)",
                              default_of("backoff"), key=f"{key}_backoff", help=HELP["backoff"])
    kinds = [k for k in OPTIONS["precision"].metadata["choices"]  # TF32 only where a GPU can run it
             if k != "tf32" or torch.cuda.is_available()]
    kw["precision"] = st.selectbox("Precision of the model's products", kinds,
                                   index=kinds.index(default_of("precision")), key=f"{key}_precision",
                                   help=HELP["precision"])
    return kw
