"""vitrep dashboard (placeholder until the multipage app lands)."""

import streamlit as st

st.set_page_config(page_title="vitrep", layout="wide")
st.title("vitrep")
st.write("The dashboard is coming: layer reconstructions, surgery, class images, stem filters and a layer-norm lesson. "
         "Meanwhile the engine runs from the command line: `python -m vitrep reconstruct --image cat --layer 1`.")
