import streamlit as st

import dashboard as ui
from vitrep.errors import VitrepError
from vitrep.filters import filter_grid
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref

st.title("Stem filters")
st.caption("The first layer's filters, each min-max normalised to [0, 1], untrained beside the weights you pick "
           "(ViT-B/32: 768 filters of 3×32×32). Training gives many of them the wavelet look of a ResNet's first "
           "layer; the untrained ones are noise.")

ref = ui.model_picker("fi", default="vit_b_32", allow_swaps=False, pre={"weights": "trained"},
                      trained_wanted="This page compares untrained filters with trained ones.")
if ref is not None:
    try:
        untrained = make_ref(ref.name, seed=ref.seed, **{k: v for k, v in ref.arch().items()})
        grids = {f"untrained (seed {ref.seed})": filter_grid(load_model(untrained))}
        if ref.weights != "untrained":
            grids[ref.label()] = filter_grid(load_model(ref))
        cols = st.columns(len(grids))
        for col, (label, g) in zip(cols, grids.items()):
            col.image(g.image(scale=1), caption=f"{label}: {g.count} filters of {g.tiles.shape[1]}×{g.tiles.shape[2]}",
                      width="stretch")
        n = next(iter(grids.values())).count
        i = st.slider("Zoom on filter", 0, n - 1, 0, key="fi_zoom")
        zc = st.columns(len(grids) * 2)
        for col, (label, g) in zip(zc, grids.items()):
            col.image(g.tile(i, scale=max(1, 192 // g.tiles.shape[1])), caption=f"{label} #{i}")
    except VitrepError as e:
        ui.error(e)
