import csv
import io

import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.images import fit_image, to_pil, to_tensor
from vitrep.models import load_model, make_ref
from vitrep.reconstruct import make_config, plan_batches, run_batch
from vitrep.sheets import contact_sheet
from vitrep.taps import describe_tap

st.title("Layer sweep")
st.caption("One image through every layer of each model, as the page's main figures show it; the layers of a "
           "model run as batches that share the common forward work. The default, untrained ViT-B/32 beside "
           "untrained ResNet-50, is the page's figure 2: the ViT keeps the image at every depth, ResNet-50 "
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
        jobs = []
        for m in models:
            ref = make_ref(m)
            lm = load_model(ref)
            img = image if ref.input_size == image.shape[-1] else to_tensor(fit_image(to_pil(image[0]), ref.input_size))
            jobs += [(m, tap, img, make_config(ref, tap, **kw)) for tap in lm.adapter.sweep_taps(lm.depth)]
        cfgs = [j[3] for j in jobs]
        plan = plan_batches(cfgs)
        stop = ui.stop_button("sw_stop")
        live = ui.Live([f"{j[0]} {describe_tap(j[1])}" for j in jobs], kw["steps"], show_image=False,
                       batches=len(plan), names=[f"{jobs[g[0]][0]} ({len(g)} layers)" for g in plan])
        queued = ui.QueueNote()
        results = run_batch([j[2] for j in jobs], cfgs, ui.memo(), progress=live,
                            on_wait=queued, queue_limit=ui.queue_limit())
        queued.clear()
        live.done()
        stop.empty()
        st.session_state[ui.keys.SW_RESULT] = [(m, tap, r) for (m, tap, _, _), r in zip(jobs, results) if r is not None]
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("sw_stop"):
    st.warning("The sweep was stopped; layers that had finished are remembered, the rest were not run.")

rows = st.session_state.get(ui.keys.SW_RESULT)
if rows:
    tiles, buf = [], io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "layer", "status", "embedding_distance", "baseline", "input_distance", "psnr", "success"])
    for model in dict.fromkeys(m for m, _, _ in rows):
        st.subheader(model)
        these = [(t, r) for m, t, r in rows if m == model]
        cols = st.columns(min(6, len(these)))
        for i, (tap, r) in enumerate(these):
            f, b = r.final, r.baseline
            cols[i % len(cols)].image(r.image, width="stretch",
                                      caption=f"{describe_tap(tap)} · PSNR {f['psnr']:.1f} dB · m_g "
                                              f"{f['embedding_distance']:.3g} {'<' if r.success else '≥'} m_r "
                                              f"{b['embedding_distance']:.3g} {'✓' if r.success else '✗'}")
            tiles.append((r.image, f"{model}\n{describe_tap(tap)}  PSNR {f['psnr']:.1f} dB\n"
                                   f"m_g {f['embedding_distance']:.3g} m_r {b['embedding_distance']:.3g}"))
            w.writerow([model, tap, r.status, f["embedding_distance"], b["embedding_distance"], f["input_distance"],
                        f["psnr"], r.success])
    st.plotly_chart(ui.curves_figure([(f"{m} {describe_tap(t)}", r) for m, t, r in rows]), key="sw_curves")
    sheet = contact_sheet(tiles, "Layer sweep", cols=6)
    c1, c2 = st.columns(2)
    c1.download_button("contact_sheet.png", ui.png_bytes(sheet), "contact_sheet.png", "image/png")
    c2.download_button("sweep.csv", buf.getvalue(), "sweep.csv", "text/csv")
