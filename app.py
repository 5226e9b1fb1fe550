"""vitrep dashboard: `streamlit run app.py`.

The entry point only routes (st.navigation) and draws the shared sidebar; each
page in pages/ is a thin script over the vitrep engine.
"""

import streamlit as st

import ui

st.set_page_config(page_title="vitrep: what vision models keep", page_icon="🔭", layout="wide")

PAGES = {
    "": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
    "Experiments": [
        st.Page("pages/reconstruct.py", title="Reconstruct", icon="🖼️"),
        st.Page("pages/sweep.py", title="Layer sweep", icon="🧱"),
        st.Page("pages/ablation.py", title="Ablation survey", icon="✂️"),
        st.Page("pages/presets.py", title="The page's figures", icon="📑"),
    ],
    "Look inside": [
        st.Page("pages/classes.py", title="Class images", icon="🐕"),
        st.Page("pages/filters.py", title="Stem filters", icon="🔲"),
        st.Page("pages/layernorm.py", title="Layer norm", icon="📐"),
    ],
}

page = st.navigation(PAGES)
ui.sidebar()
page.run()
