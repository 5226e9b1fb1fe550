import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.images import fit_image, to_pil, to_tensor
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.config import make_config
from vitrep.running.grid import Cell, batches, run_grid
from vitrep.models.taps import describe_tap

st.title("Layer sweep")
st.caption("One image through every layer of each model, as the paper's main figures show it; the layers of a "
           "model run as batches that share the common forward work. The default, untrained ViT-B/32 beside "
           "untrained ResNet-50, is the paper's figure 2: the ViT keeps the image at every depth, ResNet-50 "
           "loses it with depth.")

models = st.multiselect("Models (untrained)", list(ui.SPECS), default=["vit_b_32", "resnet50"], key="sw_models")
picked = ui.image_picker("sw", 224)
with st.form("sw_form"):
    kw = ui.schedule_inputs("sw", steps=ui.DEFAULT_STEPS)
    st.caption("About 2-3 minutes for the default pair at 150 steps on a 2-core CPU.")
    submitted = st.form_submit_button("Run the sweep", type="primary", disabled=not models or picked is None)

if submitted and picked is not None:
    image, name = picked
    st.session_state.pop(ui.keys.SW_RESULT, None)
    try:
        cells = []
        for m in models:
            ref = make_ref(m)
            lm = load_model(ref)
            img = image if ref.input_size == image.shape[-1] else to_tensor(fit_image(to_pil(image[0]), ref.input_size))
            cells += [Cell(img, make_config(ref, tap, **kw), {"model": m, "layer": tap})
                      for tap in lm.adapter.sweep_taps(lm.depth)]
        plan = batches(cells)
        with ui.running("sw_stop", lambda: ui.Live(
                [f"{c.labels['model']} {describe_tap(c.config.tap)}" for c in cells], kw["steps"], show_image=False,
                batches=len(plan), names=[f"{cells[g[0]].labels['model']} ({len(g)} layers)" for g in plan])) as run:
            grid = run_grid(cells, ui.memo(), **run)
        st.session_state[ui.keys.SW_RESULT] = grid
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("sw_stop"):
    st.warning("The sweep was stopped; layers that had finished are remembered, the rest were not run.")

grid = st.session_state.get(ui.keys.SW_RESULT)
if grid is not None and grid.done():
    done = grid.done()
    for model in dict.fromkeys(c.labels["model"] for c, _ in done):
        st.subheader(model)
        these = [(c, r) for c, r in done if c.labels["model"] == model]
        cols = st.columns(min(6, len(these)))
        for i, (c, r) in enumerate(these):
            f, b = r.final, r.baseline
            cols[i % len(cols)].image(r.image, width="stretch",
                                      caption=f"{describe_tap(c.config.tap)} · PSNR {f['psnr']:.1f} dB · m_g "
                                              f"{f['embedding_distance']:.3g} {'<' if r.success else '≥'} m_r "
                                              f"{b['embedding_distance']:.3g} {'✓' if r.success else '✗'}")
    st.plotly_chart(ui.curves_figure([(f"{c.labels['model']} {describe_tap(c.config.tap)}", r) for c, r in done]),
                    key="sw_curves")
    c1, c2 = st.columns(2)
    c1.download_button("contact_sheet.png", ui.png_bytes(grid.sheet("Layer sweep", cols=6)), "contact_sheet.png",
                       "image/png")
    c2.download_button("sweep.csv", grid.csv(), "sweep.csv", "text/csv")
