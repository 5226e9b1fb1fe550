import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.generate import make_generate_config, run_generate, search_classes
from vitrep.models.pool import load_model

st.title("Class images")
st.caption("An input a trained model takes for one ImageNet class: descend |C − logit|, blur every step, then "
           "optimise random crops of an enlarged canvas (jitter). Needs trained weights to mean anything.")

ref = ui.model_picker("cl", pre={"weights": "trained"}, allow_swaps=False,
                      trained_wanted="Class images need trained weights to mean anything.")
if ref is not None and ref.weights == "untrained":
    st.caption("With untrained weights every class gives much the same texture: a check that the method runs, "
               "not a class image.")
q = st.text_input("Search ImageNet classes", "dalmatian", key="cl_query")
hits = search_classes(q, limit=50) if q.strip() else []
with st.form("cl_form"):
    cls = st.selectbox("Class", hits, format_func=lambda h: f"{h[0]}: {h[1]}", key="cl_class") if hits else None
    c1, c2, c3 = st.columns(3)
    top = ui.PUBLIC_MAX_STEPS if ui.public_mode() else 20_000
    steps = int(c1.number_input("Steps", 2, top, 400 if ui.ON_GPU else 60, key="cl_steps"))
    jitter_start = int(c2.number_input("Jitter from step", 0, 20_000, 200 if ui.ON_GPU else 30, key="cl_jstart"))
    lr = c3.number_input("Step size (pixels)", 0.0, 10.0, 0.05, format="%.3f", key="cl_lr")
    submitted = st.form_submit_button("Generate", type="primary", disabled=ref is None or cls is None)
if not hits:
    st.warning(f"No ImageNet class matches {q!r}.")

if submitted and ref is not None and cls is not None:
    try:
        cfg = make_generate_config(ref, cls[0], steps=steps, jitter_start=jitter_start, lr_start=lr,
                                   lr_end=lr * 0.4, report_every=max(1, steps // 20))
        load_model(ref)
        def text(p):
            return (f"step {p.step}/{p.total} · logit {p.rows[0]['target_logit']:.3g} "
                    f"(best other {p.rows[0]['best_other_logit']:.3g})")

        with ui.running("cl_stop", lambda: ui.Bar(text, image_width=260)) as run:
            st.session_state[ui.keys.CL_RESULT] = run_generate(cfg, ui.memo(), **run)
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("cl_stop"):
    st.warning("Stopped; nothing was remembered for this run.")

g = st.session_state.get(ui.keys.CL_RESULT)
if g is not None:
    c1, c2 = st.columns([1, 2])
    c1.image(g.image, caption=f"class {g.config.class_index}", width="stretch")
    c2.markdown(f"**{g.status}** after {g.steps} steps. Top-5 on the result:")
    c2.table({"class": [n for _, n, _ in g.top5], "logit": [round(v, 3) for _, _, v in g.top5]})
    st.caption("Stages")
    st.image([im for _, im in g.stages], caption=[f"step {s}" for s, _ in g.stages], width=110)
    st.line_chart({"class logit": g.curves["target_logit"], "best other": g.curves["best_other_logit"]})
    st.download_button("generated.png", ui.png_bytes(g.image), "generated.png", "image/png")
