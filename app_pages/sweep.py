import csv
import io

import streamlit as st

import ui
from vitrep.errors import VitrepError
from vitrep.images import fit_image, to_pil, to_tensor
from vitrep.models import load_model, make_ref
from vitrep.reconstruct import make_config, run_batch
from vitrep.sheets import contact_sheet
from vitrep.taps import describe_tap, layer_taps

st.title("Layer sweep")
st.caption("One image through every layer of each model, as the page's main figures show it; all layers of a "
           "model run as one batch that shares the common forward work.")

models = st.multiselect("Models (untrained)", list(ui.SPECS), default=["vit_b_32", "resnet50"],
                        format_func=lambda n: ui.MODEL_LABELS[n], key="sw_models")
picked = ui.image_picker("sw", 224)
with st.form("sw_form"):
    kw = ui.schedule_inputs("sw", steps=60 if not ui.ON_GPU else 1500, lr=0.25, lr_end=0.02)
    submitted = st.form_submit_button("Run the sweep", type="primary", disabled=not models or picked is None)

if submitted and picked is not None:
    image, name = picked
    try:
        jobs = []
        for m in models:
            ref = make_ref(m)
            lm = load_model(ref)
            img = image if ref.input_size == image.shape[-1] else to_tensor(fit_image(to_pil(image[0]), ref.input_size))
            jobs += [(m, tap, img, make_config(ref, tap, **kw)) for tap in layer_taps(lm.family, lm.depth)]
        live = ui.Live([j[1] for j in jobs], kw["steps"], show_image=False)
        results = run_batch([j[2] for j in jobs], [j[3] for j in jobs], ui.memo(), progress=lambda g, p: live(p))
        live.done()
        st.session_state["sw_result"] = [(m, tap, r) for (m, tap, _, _), r in zip(jobs, results)]
    except VitrepError as e:
        st.error(str(e))

rows = st.session_state.get("sw_result")
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
            cols[i % len(cols)].image(r.image, width="stretch", caption=f"{describe_tap(tap)} · m_g {f['embedding_distance']:.3g}"
                                      f" {'<' if r.success else '≥'} m_r {b['embedding_distance']:.3g}")
            tiles.append((r.image, f"{model}\n{describe_tap(tap)} m_g {f['embedding_distance']:.3g}\nm_r {b['embedding_distance']:.3g}"))
            w.writerow([model, tap, r.status, f["embedding_distance"], b["embedding_distance"], f["input_distance"],
                        f["psnr"], r.success])
    st.plotly_chart(ui.curves_figure([(f"{m} {describe_tap(t)}", r) for m, t, r in rows]), key="sw_curves")
    sheet = contact_sheet(tiles, "Layer sweep", cols=6)
    c1, c2 = st.columns(2)
    c1.download_button("contact_sheet.png", ui.png_bytes(sheet), "contact_sheet.png", "image/png")
    c2.download_button("sweep.csv", buf.getvalue(), "sweep.csv", "text/csv")
