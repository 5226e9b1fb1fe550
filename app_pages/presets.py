import json
import tempfile
from pathlib import Path

import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.presets import BUDGETS, PRESETS, finding_line, panel_config, run_preset
from vitrep.runs import plan_batches

BUDGET_HELP = {"quick": "a handful of steps: checks that the pipeline runs, shows noise",
               "demo": "the smallest budget at which the figure's finding shows on a CPU",
               "full": "the page's step counts: hours on a CPU, minutes on a GPU"}

st.title("The page's figures")
st.caption("Each figure of the write-up as a preset, with the page's finding checked on the numbers: run it as a "
           "grid, or open one panel in the Reconstruct form.")

names = sorted(PRESETS, key=lambda n: PRESETS[n].figure)
first = next(n for n in names if not PRESETS[n].needs_trained)  # open on a figure that runs offline
name = st.selectbox("Figure", names, index=names.index(first), key="pr_name",
                    format_func=lambda n: f"{PRESETS[n].figure}. {PRESETS[n].title}"
                                          + (" (needs trained weights)" if PRESETS[n].needs_trained else ""))
p = PRESETS[name]
st.markdown(p.about)
if p.finding:
    st.markdown(f"**The page's finding, checked on the numbers:** {p.finding.claim}")
offered = [b for b in BUDGETS if b != "full" or not ui.public_mode()]  # a public server never runs for hours
budget = st.radio("Budget", offered, index=offered.index("full" if ui.ON_GPU and "full" in offered else "demo"),
                  horizontal=True, key="pr_budget", format_func=lambda b: f"{b}: {BUDGET_HELP[b]}")
steps = sorted({p.steps_for(x, budget) for x in p.panels_for(budget) if x.kind != "filters"})
expected = p.expected_seconds(budget)
facts = []
if steps:
    facts.append("steps per panel: " + ", ".join(f"{s:,}" for s in steps))
if expected and not ui.ON_GPU:
    facts.append(f"expected time: about {expected / 60:.1f} min on a 2-core CPU" if expected > 90
                 else f"expected time: about {expected:.0f} s on a 2-core CPU")
st.caption(" · ".join(facts))
if p.left_out(budget):
    st.caption(f"Left out of the {budget} budget (too costly on a CPU; choose full): "
               + ", ".join(x.label for x in p.left_out(budget)))
ckpt = None
if p.needs_trained:
    st.info(f"This figure needs trained weights ({', '.join(p.models)}). If they are not on this machine they "
            "download on the first run; without internet, give a checkpoint file below to stand in for them.")
    ckpt = ui.checkpoint_input("Checkpoint standing in for 'trained'", "pr_ckpt")

c1, c2 = st.columns(2)
if c1.button("Run this figure", type="primary", key="pr_run"):
    st.session_state.pop(ui.keys.PR_RESULT, None)
    try:
        out = Path(tempfile.mkdtemp(prefix=f"vitrep-{p.name}-"))
        recon = [x for x in p.panels_for(budget) if x.kind == "reconstruct"]
        stop = ui.stop_button("pr_stop")
        plan = plan_batches([panel_config(x, p.steps_for(x, budget), ckpt) for x in recon])
        live = ui.Live([x.label for x in recon], max([p.steps_for(x, budget) for x in recon] or [1]),
                       show_image=False, batches=max(1, len(plan)))
        with st.status(f"Running figure {p.figure} ({budget} budget)…", expanded=True) as status:
            queued = ui.QueueNote()
            summary = run_preset(p, out, budget, ckpt, ui.memo(), say=st.write,
                                 progress=live, on_wait=queued, queue_limit=ui.queue_limit())
            queued.clear()
            status.update(label="Done", state="complete")
        live.done()
        stop.empty()
        st.session_state[ui.keys.PR_RESULT] = (p.name, str(out), summary)
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("pr_stop"):
    st.warning("The figure was stopped; panels that had finished are remembered.")

recon = [x for x in p.panels if x.kind == "reconstruct"]
several = len({x.image for x in recon}) > 1
idx = c2.selectbox("…or open one panel in Reconstruct", range(len(recon)), key="pr_panel",
                   format_func=lambda i: recon[i].label + (f" ({recon[i].image})" if several else "")) if recon else None
if idx is not None and c2.button("Open in Reconstruct", key="pr_open"):
    panel = recon[idx]
    st.session_state[ui.keys.RC_PREFILL] = {
        "model": panel.model, "weights": panel.weights, "swaps": panel.swaps, "arch": panel.arch,
        "layer": panel.layer, "remove": panel.remove, "blocks": panel.blocks, "image": panel.image,
        "steps": p.steps_for(panel, budget), "pos_embed": False, **dict(panel.options)}
    st.switch_page("app_pages/reconstruct.py")

res = st.session_state.get(ui.keys.PR_RESULT)
if res and res[0] == p.name:
    _, out, summary = res
    f = summary.get("finding")
    if f:
        line = finding_line(f)
        (st.success if f["held"] else st.error if f["held"] is False else st.warning)(
            line + (f" ({f['note']})" if f.get("note") else ""))
    st.image(str(Path(out) / "contact_sheet.png"), width="stretch")
    if summary["budget"] == "quick":
        st.caption("Quick budget: a handful of steps, a pipeline check; the finding needs the demo budget.")
    d1, d2 = st.columns(2)
    d1.download_button("contact_sheet.png", (Path(out) / "contact_sheet.png").read_bytes(), "contact_sheet.png",
                       "image/png")
    d2.download_button("distances.json", json.dumps(summary, indent=2), "distances.json", "application/json")
