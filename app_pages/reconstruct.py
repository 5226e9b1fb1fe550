import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.config import make_config
from vitrep.running.runs import prepare_job

st.title("Reconstruct")
st.caption("Gradient descent from noise towards an input whose layer output matches the image's. The defaults "
           "here are the fast ones: Adam, with the model's positional embedding added as the model adds it. The "
           "write-up's own method, which its figures use, is plain gradient descent without the positional "
           "embedding: choose plain GD below and switch the positional embedding off among the run's switches.")
pre = st.session_state.pop(ui.keys.RC_PREFILL, None) or {}

left, right = st.columns([1, 1], gap="large")
with left:
    ref = ui.model_picker("rc", pre=pre)
    picked = ui.image_picker("rc", ref.input_size, default=pre.get("image", "cat")) if ref else None
with right:
    with st.form("rc_form"):
        layer = ui.layer_picker("rc", ref, pre.get("layer")) if ref else None
        remove, blocks = ui.surgery_picker("rc", ref, pre) if ref else ("", "")
        kw = ui.schedule_inputs("rc", pre=pre, ref=ref, layer=layer)
        submitted = st.form_submit_button("Reconstruct", type="primary", disabled=ref is None or picked is None)

# the live view and the result sit right under the button, so they are in view after the click
if submitted and ref is not None and picked is not None:
    image, name = picked
    st.session_state.pop(ui.keys.RC_RESULT, None)  # a new run replaces the old result, also if it is stopped
    try:
        job = prepare_job(image, make_config(ref, layer, remove=remove, blocks=blocks or None, **kw))
        m = ui.memo()
        hit = job.cached(m)
        if hit is None:
            if job.busy(m):
                st.info("Another session is computing this very run; its result will show here when it is done.")
            job.load()  # weights problems surface as one sentence, before the run
            with ui.running("rc_stop", lambda: ui.Live([name], job.config.steps)) as run:
                result = job.run(m, **run)
        else:
            result = hit
        st.session_state[ui.keys.RC_RESULT] = result
        st.session_state[ui.keys.RC_IMAGE_NAME] = name
        st.session_state.pop(ui.keys.LAST_PROGRESS, None)
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("rc_stop") and st.session_state.get(ui.keys.LAST_PROGRESS):
    last = st.session_state.pop(ui.keys.LAST_PROGRESS)
    st.warning(f"Stopped at step {last['step']}; nothing was remembered for this run.")
    st.image(last["image"], caption=f"the reconstruction at step {last['step']}", width=280)
r = st.session_state.get(ui.keys.RC_RESULT)
if r is not None:
    st.markdown(ui.verdict(r))
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.image(r.target, caption=f"target a: {st.session_state.get(ui.keys.RC_IMAGE_NAME, 'image')}", width="stretch")
    c2.image(r.image, caption=f"reconstruction a_g ({r.config.model.label()}, {r.config.tap}, "
             f"{r.config.surgery.describe()})", width="stretch")
    if r.snapshots:
        c3.caption("Snapshots")
        c3.image([im for _, im in r.snapshots], caption=[f"step {s}" for s, _ in r.snapshots], width=84)
    st.plotly_chart(ui.curves_figure([("run", r)]), key="rc_curves")
    ui.downloads(r, "rc")
