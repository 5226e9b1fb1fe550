import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.models import load_model
from vitrep.reconstruct import make_config, plan_batches, run_batch
from vitrep.sheets import contact_sheet

st.title("Ablation survey")
st.caption("The same layer with each component removed in turn (in every block up to it), side by side, "
           "curves overlaid. The default, untrained ViT-B/32 at encoder 4, shows the page's point about attention: "
           "without the first residual connection everything must pass through attention, and the image is lost "
           "(about 10 dB PSNR against 28 intact at 150 steps); every other removal keeps it.")

ref = ui.model_picker("ab")
picked = ui.image_picker("ab", ref.input_size) if ref else None
with st.form("ab_form"):
    layer = ui.layer_picker("ab", ref, ref.adapter.default_layer(ref.num_blocks)) if ref else None
    comps = ref.adapter.components if ref else ()
    chosen = st.multiselect("Remove, one at a time", comps, default=list(comps), key="ab_comps")
    kw = ui.schedule_inputs("ab", steps=ui.DEFAULT_STEPS)
    submitted = st.form_submit_button("Run the survey", type="primary", disabled=ref is None or picked is None)

if submitted and ref is not None and picked is not None:
    image, name = picked
    st.session_state.pop(ui.keys.AB_RESULT, None)
    try:
        load_model(ref)
        labels = ["intact"] + [f"without {c}" for c in chosen]
        cfgs = [make_config(ref, layer, **kw)] + [make_config(ref, layer, remove=c, **kw) for c in chosen]
        stop = ui.stop_button("ab_stop")
        live = ui.Live(labels, kw["steps"], show_image=False, batches=len(plan_batches(cfgs)))
        queued = ui.QueueNote()
        results = run_batch([image] * len(cfgs), cfgs, ui.memo(), progress=live,
                            on_wait=queued, queue_limit=ui.queue_limit())
        queued.clear()
        live.done()
        stop.empty()
        st.session_state[ui.keys.AB_RESULT] = [(lb, r) for lb, r in zip(labels, results) if r is not None]
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("ab_stop"):
    st.warning("The survey was stopped; nothing unfinished was remembered.")

rows = st.session_state.get(ui.keys.AB_RESULT)
if rows:
    cols = st.columns(min(7, len(rows) + 1))
    cols[0].image(rows[0][1].target, caption="target", width="stretch")
    for i, (label, r) in enumerate(rows, 1):
        f, b = r.final, r.baseline
        cols[i % len(cols)].image(r.image, width="stretch",
                                  caption=f"{label} · PSNR {f['psnr']:.1f} dB · ‖a−a_g‖ {f['input_distance']:.3g} · "
                                          f"m_g {f['embedding_distance']:.3g} {'<' if r.success else '≥'} m_r "
                                          f"{b['embedding_distance']:.3g} {'✓ passes' if r.success else '✗ fails'}")
    st.plotly_chart(ui.curves_figure(rows), key="ab_curves")
    sheet = contact_sheet([(rows[0][1].target, "target")]
                          + [(r.image, f"{lb}\nPSNR {r.final['psnr']:.1f} |a-a_g| {r.final['input_distance']:.3g}\n"
                                       f"m_g {r.final['embedding_distance']:.3g} m_r {r.baseline['embedding_distance']:.3g}"
                                       f" {'PASS' if r.success else 'fail'}")
                             for lb, r in rows], "Ablation survey")
    st.download_button("contact_sheet.png", ui.png_bytes(sheet), "contact_sheet.png", "image/png")
