"""vitrep dashboard: `streamlit run app.py`.

The entry point only routes (st.navigation) and draws the shared sidebar; each
page in app_pages/ is a thin script over the vitrep engine.
"""

import streamlit as st

import dashboard as ui

st.set_page_config(page_title="vitrep: what vision models keep", page_icon=":material/visibility:", layout="wide")

PAGES = {
    "": [st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Experiments": [
        st.Page("app_pages/reconstruct.py", title="Reconstruct", icon=":material/image:"),
        st.Page("app_pages/sweep.py", title="Layer sweep", icon=":material/view_module:"),
        st.Page("app_pages/ablation.py", title="Ablation survey", icon=":material/content_cut:"),
        st.Page("app_pages/figures.py", title="The write-up's figures", icon=":material/collections:"),
        st.Page("app_pages/ensemble.py", title="Many inputs, one output", icon=":material/stacks:"),
    ],
    "Look inside": [
        st.Page("app_pages/classes.py", title="Class images", icon=":material/pets:"),
        st.Page("app_pages/conditioning.py", title="Conditioning", icon=":material/ssid_chart:"),
        st.Page("app_pages/units.py", title="What a unit wants", icon=":material/neurology:"),
        st.Page("app_pages/filters.py", title="Stem filters", icon=":material/grid_on:"),
        st.Page("app_pages/layernorm.py", title="Layer norm", icon=":material/functions:"),
    ],
}

page = st.navigation(PAGES)
counts = ui.sidebar()
page.run()
ui.memo_counts(counts)  # the memo's counts as they are after this page's run
