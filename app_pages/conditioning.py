import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import dashboard as ui
from vitrep.conditioning import compared_components
from vitrep.config import make_config
from vitrep.errors import VitrepError
from vitrep.experiments import condition as experiment
from vitrep.models.pool import load_model

st.title("Conditioning")
st.caption("The paper infers that self-attention is poorly conditioned from how slowly gradient descent goes. This "
           "page measures it: the singular values of the Jacobian of the chosen layer's output with respect to the "
           "input, at your image, estimated by Lanczos iterations (never forming the Jacobian), with each removal "
           "side by side. Each value says how far it can be trusted (docs/conditioning.md).")

ref = ui.model_picker("co")
picked = ui.image_picker("co", ref.input_size) if ref else None
with st.form("co_form"):
    layer = ui.layer_picker("co", ref, ref.adapter.default_layer(ref.num_blocks)) if ref else None
    comps = ref.adapter.components if ref else ()
    chosen = st.multiselect("Compare the intact layer with each of these removed (in every block)", comps,
                            default=compared_components(ref.adapter) if ref else [], key="co_comps")
    c1, c2, c3 = st.columns(3)
    k = int(c1.number_input("Singular values at each end (k)", 1, 64, 8, key="co_k"))
    iterations = int(c2.number_input("Lanczos iterations (0 = max(5k, 80))", 0, 2000, 0, key="co_iter",
                                     help="More iterations converge more of the bottom of the spectrum; each costs "
                                          "one forward-mode and one backward product per row."))
    pos = c3.toggle("Add the positional embedding", True, key="co_pos")
    submitted = st.form_submit_button("Measure the spectra", type="primary", disabled=ref is None or picked is None)

if submitted and ref is not None and picked is not None:
    image, name = picked
    st.session_state.pop(ui.keys.CO_RESULT, None)
    try:
        load_model(ref)  # weights or memory problems: one sentence before any progress
        config = experiment.ConditionRun(make_config(ref, layer, pos_embed=pos, steps=1), image,
                                         ("none",) + tuple(chosen), k=k, iterations=iterations)
        steps = experiment.spectrum_configs(config)[1][0].lanczos_steps(10 ** 9)

        def text(p):
            sig = p.rows[0]["sigma_max"] if p.rows else float("nan")
            return f"Lanczos step {p.step}/{steps} · largest singular value so far {sig:.4g} · {p.seconds:.0f} s"

        with ui.running("co_stop", lambda: ui.Bar(text, total=steps)) as run:
            report = experiment.run(config, ui.memo(), **run)
        st.session_state[ui.keys.CO_RESULT] = (report, f"{ref.label()}, {layer}")
    except VitrepError as e:
        ui.error(e)
elif ui.stopped("co_stop"):
    st.warning("Stopped; spectra that had not finished were not remembered.")

res = st.session_state.get(ui.keys.CO_RESULT)
if res and res[0].data:
    report, what = res
    spectra = report.data
    s0 = spectra[0]
    for verdict in report.verdicts:
        st.markdown(f"**{verdict}**")
    st.caption(f"{what}: J is {s0.output_dim:,} × {s0.input_dim:,} (outputs × inputs)"
               + (f"; its null space has at least {s0.null_dim_min:,} dimensions: inputs this layer cannot tell "
                  f"apart, to first order" if s0.null_dim_min else "") + f". {s0.iterations} Lanczos steps"
               + (" (from the memo)." if all(s.from_cache for s in spectra) else "."))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("largest singular values (lower bounds)",
                                                        "smallest singular values (upper bounds)"))
    for i, s in enumerate(report.plots["spectra"]):
        color, lab = f"hsl({(i * 67) % 360},65%,45%)", "intact" if s["label"] == "none" else f"without {s['label']}"
        fig.add_trace(go.Scatter(x=s["top_x"], y=s["top"], name=lab, legendgroup=lab,
                                 error_y=dict(type="data", array=s["top_error"]), line=dict(color=color)), 1, 1)
        fig.add_trace(go.Scatter(x=s["bottom_x"], y=s["bottom"], name=lab, legendgroup=lab, showlegend=False,
                                 error_y=dict(type="data", array=s["bottom_error"]), line=dict(color=color)), 1, 2)
    fig.update_yaxes(type="log", tickformat=".3~g", exponentformat="none", title_text="singular value of J")
    fig.update_xaxes(title_text="i")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    st.plotly_chart(fig, key="co_spectra")
    table = report.rows
    bars = go.Figure(go.Bar(x=[f"without {t['removed']}" if t["removed"] != "none" else "intact" for t in table],
                            y=[t["condition_lower_bound"] for t in table],
                            text=[f"≥ {t['condition_lower_bound']:.3g}" for t in table], textposition="outside"))
    bars.update_yaxes(type="log", title_text="condition number σ_max/σ_min (lower bound)", tickformat=".3~g",
                      exponentformat="none")
    bars.update_layout(height=340, margin=dict(l=10, r=10, t=20, b=10))
    st.plotly_chart(bars, key="co_bars")
    st.dataframe([{"removed": "nothing (intact)" if t["removed"] == "none" else t["removed"], "σ_max": round(t["sigma_max"], 4), "σ_min ≤": round(t["sigma_min_bound"], 4),
                   "κ ≥": round(t["condition_lower_bound"], 3), "effective rank": round(t["effective_rank"], 1),
                   "gain ‖Jv‖/‖v‖": None if t["gain"] is None else round(t["gain"], 4),
                   "converged (top, bottom)": f"{t['converged_top']}, {t['converged_bottom']}"} for t in table],
                 hide_index=True)
    st.caption("σ_max and the largest values only grow with more iterations (they are lower bounds); the smallest only "
               "shrink (upper bounds), so κ is a lower bound. 'converged' counts the leading values known to 1%. The "
               "gain is along the image minus the descent's starting noise.")
    st.caption("The same layer as a seed ensemble shows the directions the spectrum's small values leave free: "
               "the inputs it cannot tell apart, as pictures.")
    if st.button("Open this layer as an ensemble (Many inputs, one output)", key="co_to_ensemble"):
        c = spectra[0].config.recon
        arch = tuple((k, getattr(c.model, k)) for k in ("patch", "width", "depth", "heads", "size")
                     if getattr(c.model, k) is not None)
        st.session_state[ui.keys.EN_PREFILL] = {"model": c.model.name, "weights": c.model.weights,
                                                "arch": arch, "layer": c.tap,
                                                "remove": ",".join(c.surgery.remove), "pos_embed": c.pos_embed}
        st.switch_page("app_pages/ensemble.py")
