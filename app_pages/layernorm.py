import streamlit as st

from vitrep.errors import VitrepError
from vitrep.images import prepare, sample_path
from vitrep.layernorm import PAPER_VECTORS, explain, parse_vector, patch_invariance, preimages, same_output
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref

st.title("Why layer norm is not invertible")
st.markdown("Layer norm maps a vector *x* to (x − mean(x)) / std(x): every shift and every positive scaling of "
            "*x* gives the same output. The paper's three vectors:")


def table(rows):
    st.table({"vector": [str(r.vector) for r in rows], "mean": [round(r.mean, 4) for r in rows],
              "std": [round(r.std, 4) for r in rows], "layer norm": [str([round(v, 4) for v in r.output]) for r in rows]})


table(explain(PAPER_VECTORS))
st.markdown("All three become **[−1.22, 0, 1.22]**: from the output alone there is no telling which came in.")

st.subheader("Your own vectors")
text = st.text_area("One vector per line", "3, 1, 4, 1, 5\n", key="ln_text")
try:
    vectors = [parse_vector(line) for line in text.splitlines() if line.strip()]
    if vectors:
        table(explain(vectors))
        st.write("They all map to one output." if len(vectors) > 1 and same_output(vectors) else
                 "Other inputs with the first vector's output (scale · x + shift):")
        if not (len(vectors) > 1 and same_output(vectors)):
            table(explain(preimages(vectors[0])[:4]))
except VitrepError as e:
    st.error(e.say('dashboard'))

st.subheader("Why ViT reconstructions look like patchwork")
st.markdown("In a ViT each token is one image patch, and `ln_1` normalises each token on its own. Scale and "
            "shift one patch's token and the first encoder sees the same thing, so a reconstruction is free to give "
            "each patch its own brightness and contrast.")
c1, c2, c3 = st.columns(3)
scale = c1.slider("scale the patch token by", 0.1, 10.0, 3.0, key="ln_scale")
shift = c2.slider("and shift it by", -5.0, 5.0, 2.0, key="ln_shift")
patch = int(c3.number_input("patch", 0, 48, 10, key="ln_patch"))
out = patch_invariance(load_model(make_ref("vit_b_32"), "cpu"), prepare(sample_path("cat"), 224), patch, scale, shift)
st.metric("token change before ln_1 (relative)", f"{out['token_change']:.3f}")
st.metric("output change after ln_1 (relative)", f"{out['output_change']:.2e}")
