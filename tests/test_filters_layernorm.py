"""Stem filter grids and the layer-norm lesson."""

import numpy as np
import pytest

from vitrep.errors import ConfigError
from vitrep.filters import filter_grid
from vitrep.images import prepare, sample_path
from vitrep.layernorm import PAPER_VECTORS, explain, parse_vector, patch_invariance, preimages, same_output
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref


def test_vit_b32_filter_grid():
    g = filter_grid(load_model(make_ref("vit_b_32"), "cpu"))
    assert g.tiles.shape == (768, 32, 32, 3)
    flat = g.tiles.reshape(768, -1)
    assert np.allclose(flat.min(1), 0.0) and np.allclose(flat.max(1), 1.0)
    img = g.image(cols=32, pad=1)
    assert img.shape == (24 * 33 + 1, 32 * 33 + 1, 3) and img.dtype == np.uint8
    assert g.tile(5, scale=4).shape == (128, 128, 3)


def test_resnet_and_mixer_filters():
    assert filter_grid(load_model(make_ref("resnet50"), "cpu")).tiles.shape == (64, 7, 7, 3)
    assert filter_grid(load_model(make_ref("mixer", patch=8, width=16, depth=1, size=32), "cpu")).tiles.shape == (16, 8, 8, 3)


def test_paper_vectors_share_one_output():
    rows = explain()
    assert same_output(PAPER_VECTORS)
    for r in rows:
        assert r.output == pytest.approx([-1.2247, 0.0, 1.2247], abs=2e-3)
    assert not same_output([[0, 1, 2], [0, 1, 5]])


def test_user_vectors_and_preimages():
    v = parse_vector("[3, 1, 4, 1, 5]")
    assert same_output([v] + preimages(v))
    with pytest.raises(ConfigError, match="not a list of numbers"):
        parse_vector("1, two, 3")
    with pytest.raises(ConfigError, match="at least two numbers"):
        parse_vector("7")


def test_patch_token_scale_and_shift_are_invisible_after_ln_1():
    lm = load_model(make_ref("vit_b_32"), "cpu")
    out = patch_invariance(lm, prepare(sample_path("cat"), 224), patch=10)
    assert out["token_change"] > 1.0 and out["output_change"] < 1e-4
