"""This server: device, public mode and its limits, the shared memo, the sidebar, errors."""

from __future__ import annotations

import logging
import os
from typing import Optional

import streamlit as st
import torch

from vitrep import limits
from vitrep.models import sizes
from vitrep.running.memo import get_memo
from vitrep.errors import VitrepError
from vitrep.models.registry import SPECS, make_ref
from vitrep.models.pool import cache_bytes
from vitrep.models.weights import hub_checkpoint_dir, trained_file_local


ON_GPU = torch.cuda.is_available()
DEFAULT_STEPS = 1500 if ON_GPU else 150  # Streamlit Cloud (CPU): a layer-1 run well under a minute
CHECKPOINT_DIR = limits.upload_root()  # the sessions' upload folders live here (public mode: the only weights)
MODEL_LABELS = {name: f"{name}: {spec.description}" for name, spec in SPECS.items()}
IMAGE_TYPES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# The public limits are the engine's (vitrep/limits.py), which enforces them; the widgets are drawn from them.
PUBLIC_QUEUE_LIMIT = limits.PUBLIC_QUEUE_LIMIT
PUBLIC_CHECKPOINT_MB = limits.PUBLIC_CHECKPOINT_MB
PUBLIC_MAX_STEPS = limits.PUBLIC_MAX_STEPS
PUBLIC_IMAGE_MB = limits.PUBLIC_IMAGE_MB


def public_mode() -> bool:
    """``VITREP_PUBLIC=1`` in the environment or in Streamlit's secrets: a server open to strangers.

    A secret is put into the environment, so that the engine (:mod:`vitrep.limits`), which reads only
    the environment, enforces the same mode the pages are drawn in."""
    try:
        secret = st.secrets.get("VITREP_PUBLIC")
    except Exception:  # no secrets file
        secret = None
    if secret is not None:
        os.environ["VITREP_PUBLIC"] = str(secret).strip()
    return limits.public_mode()


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


def plural(n: int, word: str) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def memo_counts(slot) -> None:
    """The memo's size and this server's counts, drawn into ``slot`` (again after a page's run ends)."""
    m = memo()
    with slot.container():
        st.markdown(f"**Memo**: {plural(len(m), 'run')}, {m.volume() / 2**20:.1f} MB of "
                    f"{m.size_limit / 2**20:.0f} MB (oldest dropped beyond)")
        st.caption(f"Computed by this server: {plural(m.computations, 'run')} · memo hits: {m.hits:,}")


def sidebar():
    """Device, memo size with a clear button, and which trained weights are on this machine; returns the memo
    counts' slot, for :func:`memo_counts` to redraw after the page has run."""
    m = memo()
    with st.sidebar:
        st.markdown("**Device**: " + (f"GPU · {torch.cuda.get_device_name(0)}" if ON_GPU
                                       else f"CPU · {torch.get_num_threads()} threads"))
        slot = st.empty()
        memo_counts(slot)
        try:
            limit_mb = limits.memory_budget_mb()
        except VitrepError as e:  # a server set up wrongly (VITREP_MEMORY_MB): its sentence, not a traceback
            error(e)
            limit_mb = None
        held = cache_bytes()
        if limit_mb or held:
            st.caption(f"Models in memory: {held / 2**20:.0f} MB" + (f" of a {limit_mb:,} MB memory budget" if limit_mb else ""))
        if public_mode():
            st.caption("Public mode: uploads only, capped steps and sizes; the memo is shared by everyone.")
        elif st.button("Clear memo", key="clear_memo"):  # changes what every session sees: local mode only
            m.clear()
            st.toast("Memo cleared.")
        local = [n for n, s in SPECS.items() if s.trained and trained_file_local(s)]
        st.markdown("**Trained weights here**: " + (", ".join(local) if local else "none (untrained models and "
                                                                                    "checkpoint files work offline)"))
    return slot


@st.cache_data(show_spinner=False)


def over_budget() -> dict[str, str]:
    """Models that do not fit this server's memory budget, with the reason (none without a budget)."""
    out = {}
    for name in SPECS:
        fits, why = sizes.model_fits(make_ref(name))
        if not fits:
            out[name] = why
    return out


def weights_home(spec) -> str:
    """Where a spec's trained weights file goes (torch hub's checkpoints folder, or the Hugging Face cache)."""
    if spec.trained is None:
        return ""
    if public_mode():
        return "this server's model cache"  # no server path in public mode
    return str(hub_checkpoint_dir()) if spec.trained.kind == "torchvision" else "the Hugging Face cache"


def queue_limit() -> Optional[int]:
    """How many waiting runs a public server accepts before it asks people to come back (None: no limit)."""
    public_mode()  # settles the mode from the secrets
    return limits.queue_limit()
