import json
import time
from pathlib import Path

import streamlit as st

import dashboard as ui
from dashboard.figures import gallery_entries, verdicts
from vitrep.errors import VitrepError
from vitrep.figures import BUDGETS, FIGURES, local_only, optimizers_of, panel_config, run_figure
from vitrep.experiments.figure import plan_lines
from vitrep.figures.costs import measured as measured_costs
from vitrep.figures.gallery import differences, find
from vitrep.running.chunks import plan_batches

BUDGET_HELP = {"quick": "a handful of steps: checks that the pipeline runs; nothing moves, so nothing is judged",
               "demo": "the smallest budget at which the figure's claims can be judged on a CPU",
               "full": "the paper's step counts: hours on a CPU, minutes on a GPU"}
METHOD_HELP = {"gd": "plain GD: the paper's method", "adam": "Adam: fast, but it can hide poor conditioning",
               "both": "both, side by side: one verdict each"}
st.title("The write-up's figures")
st.caption("Each figure of the write-up as a preset. Its claims are quoted and tested on the run's numbers: HELD, "
           "NOT HELD, or NOT CHECKED where the run cannot tell (panels that did not move, a budget too small, "
           "weights missing). Run it as a grid, or open one panel in the Reconstruct form.")

names = sorted(FIGURES, key=lambda n: FIGURES[n].figure)
first = "layer-depth"  # figure 2, the write-up's central figure, open at once from the gallery
name = st.selectbox("Figure", names, index=names.index(first), key="pr_name",
                    format_func=lambda n: f"{FIGURES[n].figure}. {FIGURES[n].title}"
                                          + (" (needs trained weights)" if FIGURES[n].needs_trained else ""))
fig = FIGURES[name]
st.markdown(fig.about)
if fig.claims:
    with st.expander(f"What the paper claims here, and how it is tested ({len(fig.claims)})", expanded=True):
        for n, c in enumerate(fig.claims, 1):
            st.markdown(f"**Claim {n}.** The paper: “*{c.quote}*”\n\n**Test:** {c.test}."
                        + (" Judged under plain GD only: it is about minimising m by gradient descent." if c.on_m else ""))
else:
    st.markdown("*The paper states no finding for this figure: its panels are shown without a verdict.*")

gallery = find(fig.figure)
if gallery:
    st.subheader("At the write-up's budget, from the gallery")
    gallery_entries(gallery)
elif fig.needs_trained:
    st.caption("No gallery entry: this figure needs trained weights. On a machine that has them it can be added "
               "to the gallery (docs/gallery.md in the repository says how).")
st.subheader("Run it live")
c1, c2 = st.columns(2)
method = c1.radio("Optimizer", ["gd", "adam", "both"], horizontal=True, key="pr_opt",
                  format_func=lambda m: METHOD_HELP[m])
offered = [b for b in BUDGETS if b != "full" or not ui.public_mode()]  # a public server never runs for hours
if ui.public_mode():
    st.caption("This public server runs the quick and demo budgets; the write-up's full budget takes hours on its "
               "CPU, so its results are the gallery's above.")
budget = c2.radio("Budget", offered, index=offered.index("full" if ui.ON_GPU and "full" in offered else "demo"),
                  horizontal=True, key="pr_budget", format_func=lambda b: f"{b}: {BUDGET_HELP[b]}")
opts = optimizers_of(method)
costs = measured_costs(ui.memo().directory)
expected = fig.expected_seconds(budget, len(opts), costs=costs)
for line in plan_lines(fig, budget, opts, costs=costs, on_ray=ui.ON_GPU, interface="dashboard"):  # no CPU time on a GPU
    if not line.startswith("note:"):  # trained weights: said with the checkpoint box below
        st.caption(line[0].upper() + line[1:] + ("" if line.endswith(".") else "."))
ckpt = None
if fig.needs_trained:
    st.info(f"This figure needs trained weights ({', '.join(fig.models)}). If they are not on this machine they "
            "download on the first run; without internet, give a checkpoint file below to stand in for them.")
    ckpt = ui.checkpoint_input("Checkpoint standing in for 'trained'", "pr_ckpt")

try:
    cannot = local_only(fig, budget, method, ckpt)
except VitrepError:  # e.g. trained weights this machine cannot have: the run says so when clicked
    cannot = ""
if cannot:
    st.info("Local only: this server cannot run this figure live (" + cannot.split(";")[0] + ")."
            + (" Its result at the write-up's budget is the gallery's above." if gallery else ""))
c1, c2 = st.columns(2)
if c1.button("Run this figure", type="primary", key="pr_run", disabled=bool(cannot)):
    st.session_state.pop(ui.keys.PR_RESULT, None)
    area = st.empty()  # the run's widgets: emptied if the run is refused, so nothing is left behind
    try:
        out = ui.session_output_folder(fig.name)  # removed with the session; a rerun replaces its files
        recon = [x for x in fig.panels_for(budget) if x.kind == "reconstruct"]
        plan = plan_batches([panel_config(x, fig.steps_for(x, budget), ckpt, optimizer=o) for o in opts for x in recon])
        with area.container():
            names = [x.label + (f" ({METHOD_HELP[o].split(':')[0]})" if len(opts) > 1 else "") for o in opts for x in recon]
            with ui.running("pr_stop", lambda: ui.Live(names,
                                                       max([fig.steps_for(x, budget) for x in recon] or [1]),
                                                       show_image=False, batches=max(1, len(plan)))) as run:
                with st.status(f"Running figure {fig.figure} ({budget} budget, {METHOD_HELP[method]})…",
                               expanded=True) as status:
                    t0 = time.perf_counter()
                    summary = run_figure(fig, out, budget, ckpt, ui.memo(), say=st.write, optimizer=method, **run)
                    status.update(label="Done", state="complete")
        st.session_state[ui.keys.PR_RESULT] = (fig.name, str(out), summary, expected, time.perf_counter() - t0)
    except VitrepError as e:
        area.empty()
        ui.error(e)
elif ui.stopped("pr_stop"):
    st.warning("The figure was stopped; panels that had finished are remembered.")

recon = [x for x in fig.panels if x.kind == "reconstruct"]
several = len({x.image for x in recon}) > 1
idx = c2.selectbox("…or open one panel in Reconstruct", range(len(recon)), key="pr_panel",
                   format_func=lambda i: recon[i].label + (f" ({recon[i].image})" if several else "")) if recon else None
if idx is not None and c2.button("Open in Reconstruct", key="pr_open"):
    panel = recon[idx]
    st.session_state[ui.keys.RC_PREFILL] = {
        "model": panel.model, "weights": panel.weights, "swaps": panel.swaps, "arch": panel.arch,
        "layer": panel.layer, "remove": panel.remove, "blocks": panel.blocks, "image": panel.image,
        "steps": fig.steps_for(panel, budget), "pos_embed": panel.pos_embed,
        "optimizer": "adam" if method == "adam" else "gd", **dict(panel.options)}
    st.switch_page("app_pages/reconstruct.py")

res = st.session_state.get(ui.keys.PR_RESULT)
if res and res[0] == fig.name:
    _, out, summary, guessed, took = res
    if guessed and not ui.ON_GPU:
        st.caption(f"Expected about {guessed / 60:.1f} min, took {took / 60:.1f} min"
                   + (" (read from the memo: nothing was computed)." if took < 0.2 * guessed else "."))
    if summary.get("variant"):
        st.info(summary["variant"][0].upper() + summary["variant"][1:] + ".")
    verdicts(summary)
    same = [e for e in gallery if set(e.optimizers) & set(summary["optimizers"])]
    for e in same:
        for line in differences(summary, e.summary):
            st.caption(line)
    st.image(str(Path(out) / "contact_sheet.png"), width="stretch")
    if summary["budget"] == "quick":
        st.caption("Quick budget: a handful of steps, a pipeline check; the claims need the demo budget.")
    d1, d2 = st.columns(2)
    d1.download_button("contact_sheet.png", (Path(out) / "contact_sheet.png").read_bytes(), "contact_sheet.png",
                       "image/png")
    d2.download_button("distances.json", json.dumps(summary, indent=2), "distances.json", "application/json")
