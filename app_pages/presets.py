import json
import tempfile
from pathlib import Path

import streamlit as st

import ui
from vitrep.errors import VitrepError
from vitrep.presets import PRESETS, quick_steps, run_preset

st.title("The page's figures")
st.caption("Each figure of the write-up as a preset: run it as a grid, or open one panel in the Reconstruct form.")

names = sorted(PRESETS, key=lambda n: PRESETS[n].figure)
name = st.selectbox("Figure", names, format_func=lambda n: f"{PRESETS[n].figure}. {PRESETS[n].title}", key="pr_name")
p = PRESETS[name]
st.markdown(p.about)
if p.needs_trained:
    st.info(f"Needs trained weights ({', '.join(p.models)}). Offline, upload a checkpoint to stand in for them.")
quick = st.toggle("Quick look (reduced step counts)", not ui.ON_GPU, key="pr_quick")
steps = sorted({x.steps for x in p.panels if x.kind != "filters"})
if steps:
    st.caption("Steps per panel: " + ", ".join(f"{s:,}" + (f" → {quick_steps(s)} (quick)" if quick else "") for s in steps))
ckpt = ui.checkpoint_input("Checkpoint standing in for 'trained'", "pr_ckpt") if p.needs_trained else None

c1, c2 = st.columns(2)
if c1.button("Run this figure", type="primary", key="pr_run"):
    try:
        out = Path(tempfile.mkdtemp(prefix=f"vitrep-{p.name}-"))
        with st.status(f"Running figure {p.figure}…", expanded=True) as status:
            summary = run_preset(p, out, quick, ckpt, ui.memo(),
                                 progress=st.write)
            status.update(label="Done", state="complete")
        st.session_state["pr_result"] = (p.name, str(out), summary)
    except VitrepError as e:
        st.error(str(e))

recon = [x for x in p.panels if x.kind == "reconstruct"]
several = len({x.image for x in recon}) > 1
idx = c2.selectbox("…or open one panel in Reconstruct", range(len(recon)), key="pr_panel",
                   format_func=lambda i: recon[i].label + (f" ({recon[i].image})" if several else "")) if recon else None
if idx is not None and c2.button("Open in Reconstruct", key="pr_open"):
    panel = recon[idx]
    st.session_state["rc_prefill"] = {
        "model": panel.model, "weights": panel.weights, "swaps": panel.swaps, "arch": panel.arch,
        "layer": panel.layer, "remove": panel.remove, "blocks": panel.blocks, "image": panel.image,
        "steps": quick_steps(panel.steps) if quick else panel.steps, "pos_embed": False, **dict(panel.options)}
    st.switch_page("app_pages/reconstruct.py")

res = st.session_state.get("pr_result")
if res and res[0] == p.name:
    _, out, summary = res
    st.image(str(Path(out) / "contact_sheet.png"), width="stretch")
    if summary["quick"]:
        st.caption("Quick look: step counts reduced; not the page's figure.")
    d1, d2 = st.columns(2)
    d1.download_button("contact_sheet.png", (Path(out) / "contact_sheet.png").read_bytes(), "contact_sheet.png", "image/png")
    d2.download_button("distances.json", json.dumps(summary, indent=2), "distances.json", "application/json")
