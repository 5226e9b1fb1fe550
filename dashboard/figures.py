"""The figures page's pieces: verdicts by optimizer, and a gallery entry drawn at once."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from vitrep.figures.gallery import Entry, stale_sentence
from vitrep.figures.verdicts import METHODS

SHOW = {"HELD": st.success, "NOT HELD": st.warning, "NOT CHECKED": st.info}  # red is for errors only


def verdicts(summary: dict) -> None:
    """Each claim's verdict line, one column per optimizer the run used; claims judged once below."""
    ran = summary["optimizers"]
    methods = [m for m in ran if any(v["optimizer"] == m for v in summary["verdicts"])]
    once = [v for v in summary["verdicts"] if v["optimizer"] not in ran]  # class images, filters: judged once
    cols = st.columns(len(methods)) if len(methods) > 1 else [st.container()]
    for col, m in zip(cols, methods):
        with col:
            for v in [v for v in summary["verdicts"] if v["optimizer"] == m]:
                SHOW[v["verdict"]](v["line"])
    for v in once:
        SHOW[v["verdict"]](v["line"])
    for line in summary.get("disagreements", []):
        st.warning(line)
    if not summary.get("claims"):
        st.caption("The write-up states no finding for this figure: its panels are shown without a verdict.")


def gallery_entries(found: list[Entry]) -> None:
    """The gallery's entries of one figure, side by side by optimizer: provenance, verdicts, contact sheet."""
    cols = st.columns(len(found)) if len(found) > 1 else [st.container()]
    for col, e in zip(cols, found):
        with col:
            st.markdown(f"**{' and '.join(METHODS[o] for o in e.optimizers)}**, the write-up's budget, "
                        f"{e.steps_text()}")
            st.caption(e.made_on()[0].upper() + e.made_on()[1:] + ".")
            if e.time_note():
                st.caption(e.time_note())
            old = stale_sentence(e, command=False)
            if old:
                st.warning(old)
            if e.summary.get("variant"):  # a variant of the write-up's setup: said before its verdicts
                st.caption(e.summary["variant"][0].upper() + e.summary["variant"][1:] + "."
                           + (" On a machine with the trained weights the whole figure can be added to the "
                              "gallery (docs/gallery.md in the repository says how)."
                              if e.summary.get("untrained_only") else ""))
            verdicts(e.summary)
            st.image(str(Path(e.path) / "contact_sheet.png"), width="stretch")
