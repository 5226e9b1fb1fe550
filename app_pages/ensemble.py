import streamlit as st

import dashboard as ui
from dashboard.ensemble import EnsembleLive, distances_figure
from vitrep.config import make_config
from vitrep.ensembles import UNDETERMINED, run_ensemble
from vitrep.experiments.ensemble import ensemble_lines

st.title("Many inputs, one output")
st.caption("The same image reconstructed from the same layer from several starts at once. Where the "
           "reconstructions agree, the layer determines the picture; where they spread apart while their outputs "
           "all match the image's, it does not: the write-up's non-invertibility, seen rather than inferred.")
pre = st.session_state.pop(ui.keys.EN_PREFILL, None) or {}  # a layer opened from the conditioning page
if pre:
    st.info(f"The layer the conditioning page measured: {pre['model']}, {pre['layer']}"
            + (f", without {pre['remove']}" if pre.get("remove") else "") + ".")
left, right = st.columns([1, 1], gap="large")
with left:
    ref = ui.model_picker("en", pre=pre)
    picked = ui.image_picker("en", ref.input_size, default="cat") if ref else None
with right:
    with st.form("en_form"):
        layer = ui.layer_picker("en", ref, pre.get("layer")) if ref else None
        remove, blocks = ui.surgery_picker("en", ref, pre) if ref else ("", "")
        seeds = st.slider("Starts (seeds)", 2, 16, 8, key="en_seeds",
                          help="How many reconstructions, each from its own N(0.7, 1/20) start; one batch.")
        steps0 = min(150, ui.PUBLIC_MAX_STEPS // 8) if ui.public_mode() else 150  # 8 starts fit a public server's cap
        kw = ui.schedule_inputs("en", pre={"steps": steps0, **({"pos_embed": pre["pos_embed"]} if pre else {})},
                                ref=ref, layer=layer)
        go_ = st.form_submit_button("Run the ensemble", type="primary", disabled=ref is None or picked is None)

if go_ and ref is not None and picked is not None:
    image, name = picked
    st.session_state.pop("en_result", None)
    with ui.attempt():
        cfg = make_config(ref, layer, remove=remove, blocks=blocks or None, **kw)
        with ui.running("en_stop", lambda: EnsembleLive(seeds, cfg.steps)) as run:
            e = run_ensemble(image, cfg, seeds, ui.memo(), run["progress"])
        if e is not None:
            st.session_state["en_result"] = (e, name)
elif ui.stopped("en_stop"):
    st.warning("The ensemble was stopped; its members that finished are remembered.")

res = st.session_state.get("en_result")
if res is not None:
    e, name = res
    for line in ensemble_lines(e):
        st.markdown(line)
    c1, c2, c3 = st.columns(3)
    c1.image(e.target, caption=f"the image: {name}", width="stretch")
    c2.image(e.mean, caption="the members' mean", width="stretch")
    c3.image(e.heat_map(), caption=f"spread over the image (red: beyond the baseline's 1/18 = {UNDETERMINED:.3f})",
             width="stretch")
    st.image([r.image for r in e.members], caption=[f"seed {r.config.seed}" for r in e.members], width=112)
    st.plotly_chart(distances_figure(e.curves["step"], e.curves["pairwise_distance"], e.curves["m_g"], e.mean_m_r),
                    key="en_curves")
    c = e.members[0].config
    st.caption(f"The conditioning page measures the same layer's Jacobian spectrum: model {c.model.name}, tap "
               f"{c.tap}, removed {', '.join(c.surgery.remove) or 'nothing'}.")
    st.page_link("app_pages/conditioning.py", label="Conditioning: the spectrum of this layer",
                 icon=":material/ssid_chart:")
