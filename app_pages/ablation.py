import streamlit as st

import ui
from vitrep.errors import VitrepError
from vitrep.models import load_model
from vitrep.reconstruct import make_config, run_batch
from vitrep.sheets import contact_sheet
from vitrep.surgery import COMPONENTS

st.title("Ablation survey")
st.caption("The same layer with each component removed in turn (in every block up to it), side by side, "
           "curves overlaid.")

ref = ui.model_picker("ab")
picked = ui.image_picker("ab", ref.input_size) if ref else None
with st.form("ab_form"):
    layer = ui.layer_picker("ab", ref, 4 if ref and ref.spec.family != "resnet" else 1) if ref else None
    comps = COMPONENTS[ref.spec.family] if ref else ()
    chosen = st.multiselect("Remove, one at a time", comps, default=list(comps), key="ab_comps")
    kw = ui.schedule_inputs("ab", steps=60 if not ui.ON_GPU else 1500, lr=0.25, lr_end=0.02)
    submitted = st.form_submit_button("Run the survey", type="primary", disabled=ref is None or picked is None)

if submitted and ref is not None and picked is not None:
    image, name = picked
    try:
        load_model(ref)
        labels = ["intact"] + [f"without {c}" for c in chosen]
        cfgs = [make_config(ref, layer, **kw)] + [make_config(ref, layer, remove=c, **kw) for c in chosen]
        live = ui.Live(labels, kw["steps"], show_image=False)
        results = run_batch([image] * len(cfgs), cfgs, ui.memo(), progress=lambda g, p: live(p))
        live.done()
        st.session_state["ab_result"] = list(zip(labels, results))
    except VitrepError as e:
        st.error(str(e))

rows = st.session_state.get("ab_result")
if rows:
    cols = st.columns(min(7, len(rows) + 1))
    cols[0].image(rows[0][1].target, caption="target", width="stretch")
    for i, (label, r) in enumerate(rows, 1):
        cols[i % len(cols)].image(r.image, width="stretch",
                                  caption=f"{label} · ‖a−a_g‖ {r.final['input_distance']:.3g} · "
                                          f"m_g {r.final['embedding_distance']:.3g}")
    st.plotly_chart(ui.curves_figure(rows), key="ab_curves")
    sheet = contact_sheet([(rows[0][1].target, "target")] + [(r.image, f"{l}\n|a-a_g| {r.final['input_distance']:.3g}")
                                                              for l, r in rows], "Ablation survey")
    st.download_button("contact_sheet.png", ui.png_bytes(sheet), "contact_sheet.png", "image/png")
