import streamlit as st

import dashboard as ui
from dashboard.units import KINDS, UnitsLive, caption, scores_figure
from vitrep.experiments.units import UnitsRun, objectives_for, run
from vitrep.units import make_units_config
from vitrep.units.run import PUBLIC_MAX_ROWS, PUBLIC_UNIT_STEPS

MOST = PUBLIC_UNIT_STEPS if ui.public_mode() else 100_000  # a public server's cap, drawn into the widgets

st.title("What a unit wants")
st.caption("The image each unit responds to most: an MLP unit, an attention head, a channel of any layer. The "
           "units shown are the ones most active on your image; click one to look closer, run it longer or change "
           "what it maximises. Removals and trained-part swaps apply, as on every page.")
left, right = st.columns([1, 1], gap="large")
with left:
    ref = ui.model_picker("un")
    picked = ui.image_picker("un", ref.input_size, default="cat") if ref else None
with right:
    with st.form("un_form"):
        kind = st.selectbox("Unit", list(KINDS), format_func=KINDS.get, key="un_kind")
        if ref is not None and kind in ("mlp", "head"):
            layer = str(st.number_input("Block", 1, ref.num_blocks, min(6, ref.num_blocks), key="un_block"))
        else:
            layer = ui.layer_picker("un", ref, ref.adapter.default_layer(ref.num_blocks)) if ref else "1"
        top = st.slider("How many units (the most active on the image)", 1, PUBLIC_MAX_ROWS, 8, key="un_top")
        remove, blocks = ui.surgery_picker("un", ref) if ref else ([], "")
        param = st.radio("Image", ["fourier", "pixel"], horizontal=True, key="un_param",
                         format_func={"fourier": "Fourier, colour-decorrelated (lucent's)", "pixel": "pixels"}.get)
        steps = st.number_input("Steps", 1, MOST // PUBLIC_MAX_ROWS if ui.public_mode() else MOST, 64, key="un_steps",
                                help="Adam steps; each unit is one row of one batch.")
        go_ = st.form_submit_button("Visualise", type="primary", disabled=ref is None or picked is None)


def _run(cfg, image, top_, stop_key: str):
    names = list(cfg.objectives) if top_ is None else [f"unit {i + 1}" for i in range(top_[2])]
    with ui.running(stop_key, lambda: UnitsLive(names, cfg.steps)) as r:
        return run(UnitsRun(cfg, image, top_), ui.memo(), **r)


if go_ and ref is not None and picked is not None:
    st.session_state.pop("un_result", None)
    st.session_state.pop("un_zoom", None)
    with ui.attempt():
        cfg = make_units_config(ref, objectives_for(kind, layer, [0]), remove=remove, blocks=blocks or None,
                                param=param, steps=int(steps))
        st.session_state["un_result"] = _run(cfg, picked[0], (kind, layer, int(top)), "un_stop")
elif ui.stopped("un_stop"):
    st.warning("The run was stopped; a finished run is remembered, a stopped one is not.")

report = st.session_state.get("un_result")
if report is not None:
    u = report.data
    for line in report.lines[:2]:
        st.markdown(line)
    cols = st.columns(4)
    for i, (obj, im, score) in enumerate(zip(u.config.objectives, u.images, u.scores)):
        with cols[i % 4]:
            st.image(im, caption=caption(obj, score), width="stretch")
            if st.button("Look closer", key=f"un_pick_{i}", icon=":material/zoom_in:"):
                st.session_state["un_zoom"] = i
                st.session_state.pop("un_zoom_result", None)
    st.plotly_chart(scores_figure(u.curves, list(u.config.objectives)), key="un_curves")

    z = st.session_state.get("un_zoom")
    if z is not None and z < len(u.images):
        st.subheader(f"Closer: {u.config.objectives[z]}")
        c1, c2 = st.columns([1, 1], gap="large")
        c1.image(u.images[z], caption=caption(u.config.objectives[z], u.scores[z]), width="stretch")
        with c2.form("un_zoom_form"):
            text = st.text_input("Objective", u.config.objectives[z], key="un_zoom_text",
                                 help="Compose with + and *: e.g. mlp(6, 3) + 0.5 * head(6, 1), or -channel('stem', 2). "
                                      "match('encoder-4') matches the image's output there.")
            longer = st.number_input("Steps", 1, MOST, min(MOST, u.config.steps * 4), key="un_zoom_steps")
            again = st.form_submit_button("Run this unit", type="primary")
        if again:
            with ui.attempt():
                from dataclasses import replace

                zc = make_units_config(u.config.model, [text], param=u.config.param, steps=int(longer))
                zc = replace(zc, surgery=u.config.surgery)
                st.session_state["un_zoom_result"] = _run(zc, picked[0] if picked else None, None, "un_zoom_stop")
        zr = st.session_state.get("un_zoom_result")
        if zr is not None:
            zu = zr.data
            st.markdown(zr.lines[0])
            c3, c4 = st.columns([1, 1], gap="large")
            c3.image(zu.images[0], caption=caption(zu.config.objectives[0], zu.scores[0]) + f" · {zu.steps} steps",
                     width="stretch")
            c4.plotly_chart(scores_figure(zu.curves, list(zu.config.objectives)), key="un_zoom_curve")
