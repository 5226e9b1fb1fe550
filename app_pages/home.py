import json
from pathlib import Path

import streamlit as st

EX = Path(__file__).resolve().parent.parent / "assets" / "example"

st.title("What do vision models keep of their input?")
st.markdown(
    "Take an image, run it through a model up to one layer, and ask gradient descent to find an input that "
    "gives the same layer output. Start from noise and follow the gradient of the distance between the two "
    "outputs, with a little blur at each step. If the layer kept the picture, the picture comes back; what "
    "is missing is what the layer threw away. This dashboard runs the experiments of *Representation in "
    "Vision Transformers and Attentionless Models*: ViTs, ResNet-50, MLP-Mixers and an attention-free "
    "ViT, with components removed or swapped, class images, stem filters and why layer norm cannot be undone.")
doc = json.loads((EX / "result.json").read_text())
c1, c2, c3 = st.columns([1, 1, 2])
c1.image(str(EX / "target.png"), caption="the image a", width="stretch")
c2.image(str(EX / "reconstruction.png"), caption=f"a_g from {doc['layer']} of an {doc['model']}", width="stretch")
c3.markdown(
    f"**An example.** After {doc['steps']} steps the layer output of the reconstruction is "
    f"m_g = {doc['final']['embedding_distance']:.3g} from the target's, closer than that of a barely changed copy "
    f"of the image (m_r = {doc['baseline']['embedding_distance']:.3g}): by the paper's criterion, encoder 1 "
    f"represents the cat accurately. PSNR {doc['final']['psnr']:.1f} dB.")
st.info("**Start here:** *The write-up's figures* opens on figure 2, the write-up's central one, computed at the "
        "write-up's own budget (1,500 plain gradient-descent steps a panel) and kept in the gallery, so it shows at "
        "once: each claim quoted and tested on the numbers, HELD, NOT HELD, or NOT CHECKED where a run cannot tell, "
        "by the metric the claim's words name (structure for clarity, distance for accuracy). Beside it you can run "
        "the figure live at a shorter budget and see where the verdicts differ. Reconstruct runs one image and one "
        "layer with the fast Adam by default; the figures use the write-up's plain gradient descent.")
st.subheader("Where to go")
st.page_link("app_pages/reconstruct.py", label="Reconstruct: one image, one layer, live", icon=":material/image:")
st.page_link("app_pages/sweep.py", label="Layer sweep: every layer of one or more models, as a grid", icon=":material/view_module:")
st.page_link("app_pages/ablation.py", label="Ablation survey: remove each component in turn", icon=":material/content_cut:")
st.page_link("app_pages/figures.py", label="The write-up's sixteen figures, their claims tested", icon=":material/collections:")
st.page_link("app_pages/ensemble.py", label="Many inputs, one output: what a layer leaves undetermined",
             icon=":material/stacks:")
st.page_link("app_pages/classes.py", label="Class images: what a trained model wants to see", icon=":material/pets:")
st.page_link("app_pages/units.py", label="What a unit wants: MLP units, heads and channels visualised",
             icon=":material/neurology:")
st.page_link("app_pages/conditioning.py", label="Conditioning: the Jacobian spectrum of a layer, measured", icon=":material/ssid_chart:")
st.page_link("app_pages/filters.py", label="Stem filters, before and after training", icon=":material/grid_on:")
st.page_link("app_pages/layernorm.py", label="Layer norm: why ViT reconstructions look like patchwork", icon=":material/functions:")
