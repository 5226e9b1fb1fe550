"""Unit visualisation on models built to have known preferred inputs (trained weights cannot be had offline).

A stem filter that is an oriented grating must give that grating
(:mod:`vitrep.units.known`); a direction at the stem must give the
direction's pattern ``W^T v``.
"""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitrep.cli import main
from vitrep.errors import ConfigError
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.units import make_units_config, parse, run_units, top_units, unit_range, visualise
from vitrep.units.known import grating as known_grating
from vitrep.units.known import patch_correlation, set_stem
from vitrep.units.objectives import TapSite, UnitSite
from vitrep.units.sites import activations

P = 16  # patch: a 64 px image is 4 x 4 patches
STILL = dict(jitter=0, scale=0.0, rotate=0.0)  # no robustness transforms: the exact optimum is reachable


def _stem_model(seed: int, filters: dict):
    """A 64 px ViT whose stem filters are ``filters`` (:func:`vitrep.units.known.set_stem`); each test has its own
    seed, so its edited model is its own."""
    ref = make_ref("vit_custom", patch=P, width=32, depth=2, heads=2, size=64, seed=seed)
    lm = load_model(ref, "cpu")
    set_stem(lm, filters)
    return ref, lm


def grating(period: float, degrees: float) -> torch.Tensor:
    return known_grating(P, period, degrees)


@pytest.mark.parametrize("param,steps,bound", [("pixel", 32, 0.8), ("fourier", 128, 0.5)])
def test_a_grating_filter_gives_its_grating(param, steps, bound):
    """The best a [0, 1] image can do is the grating binarised (correlation 2 sqrt(2) / pi = 0.90 with it)."""
    g = grating(8, 30)
    ref, lm = _stem_model(201 if param == "pixel" else 202, {0: g})
    u = visualise(make_units_config(ref, ["channel('stem', 0)"], param=param, steps=steps, **STILL), lm=lm)
    r = patch_correlation(u.images[0], g.expand(3, P, P))
    other = patch_correlation(u.images[0], grating(8, 120).expand(3, P, P))  # the orthogonal orientation
    print(f"\n{param}, {steps} steps: correlation {r:.3f} with the grating, {other:.3f} with the one across it")
    assert r >= bound and abs(other) < 0.2
    assert u.scores[0] > u.start_scores[0] + 1.0


def test_a_direction_at_a_linear_tap_gives_its_weight_pattern():
    """At the stem, <mean token, v> = <patch, W^T v> summed: the preferred patch is W^T v binarised
    (correlation sqrt(2 / pi) = 0.80 with a Gaussian pattern)."""
    ref = make_ref("vit_custom", patch=P, width=32, depth=2, heads=2, size=64, seed=203)
    lm = load_model(ref, "cpu")
    v = torch.randn(32, generator=torch.Generator().manual_seed(5))
    u = visualise(make_units_config(ref, [f"direction('stem', {v.tolist()})"], param="pixel", steps=48, **STILL),
                  lm=lm)
    w = lm.module.conv_proj.weight.reshape(32, -1)  # (D, 3 * P * P), the patch's order
    r = patch_correlation(u.images[0], ((v / v.norm()) @ w).reshape(3, P, P))
    print(f"\ndirection: correlation {r:.3f} with W^T v")
    assert r >= 0.7


def _score(lm, text: str, images: list) -> list[float]:
    o = parse(text, lm)
    x = torch.stack([torch.tensor(im).float().permute(2, 0, 1) / 255 for im in images])
    with torch.no_grad():
        return o(activations(lm, x, o.sites())).tolist()


def test_a_sum_maximises_both_and_rows_are_their_own_runs():
    a, b = "channel('stem', 0)", "channel('stem', 1)"
    ref, lm = _stem_model(204, {0: grating(8, 0), 1: grating(8, 90)})
    u = visualise(make_units_config(ref, [a, b, f"{a} + {b}"], param="pixel", steps=32, **STILL), lm=lm)
    ia, ib, iab = u.images
    sa, sb = _score(lm, a, [ia, ib, iab]), _score(lm, b, [ia, ib, iab])
    print(f"\na on (a, b, a+b): {np.round(sa, 2)}; b: {np.round(sb, 2)}; starts {np.round(u.start_scores, 2)}")
    assert sa[2] > sa[1] and sb[2] > sb[0]  # the sum keeps both
    assert sa[2] > u.start_scores[0] + 1.0 and sb[2] > u.start_scores[1] + 1.0
    lone = visualise(make_units_config(ref, [b], param="pixel", steps=32, **STILL), lm=lm)
    assert np.abs(lone.images[0].astype(int) - ib.astype(int)).max() <= 1  # a row is the lone run


def test_the_text_form_composes_like_the_objects():
    o = parse("2 * mlp(1, 3) - head(2, 1) * channel('stem', 4) + -0.5 * neuron(1, 2)")
    assert o.sites() == {UnitSite(1, "mlp"), UnitSite(2, "head"), TapSite("stem"), TapSite("1")}
    p = 2 * parse("mlp(1, 3)") - parse("head(2, 1)") * parse("channel('stem', 4)") + -0.5 * parse("neuron(1, 2)")
    assert p.text == o.text
    for bad in ("__import__('os')", "mlp(1, 3) ** 2", "mlp(1)", "1 + 2", "open('x')", "mlp(x, 3)", ""):
        with pytest.raises(ConfigError):
            parse(bad)


def test_a_unit_is_unchanged_by_surgery_after_it_and_changed_before_it(tiny_ref):
    kw = dict(steps=6, param="pixel", report_every=3)
    intact = visualise(make_units_config(tiny_ref, ["mlp(2, 5)"], **kw))
    later = visualise(make_units_config(tiny_ref, ["mlp(2, 5)"], remove="mlp,attention", blocks="3-4", **kw))
    earlier = visualise(make_units_config(tiny_ref, ["mlp(2, 5)"], remove="attention", blocks="1", **kw))
    assert np.array_equal(intact.images[0], later.images[0]) and intact.curves == later.curves
    assert not np.array_equal(intact.images[0], earlier.images[0])
    with pytest.raises(ConfigError, match="removed by the surgery"):
        visualise(make_units_config(tiny_ref, ["mlp(2, 5)"], remove="mlp", blocks="2", **kw))


def test_heads_add_up_to_the_attention_output(tiny_ref, cat32):
    """The heads read at the site, through the output projection, are the block's attention output."""
    lm = load_model(tiny_ref, "cpu")
    blk = lm.module.encoder.layers[1]
    seen = {}
    h = blk.self_attention.register_forward_hook(lambda m, a, out: seen.update(attn=out[0]))
    try:
        heads = activations(lm, cat32, [UnitSite(2, "head")])[UnitSite(2, "head")]  # (1, T, 2, 16)
    finally:
        h.remove()
    mha = blk.self_attention
    back = F.linear(heads.flatten(2), mha.out_proj.weight, mha.out_proj.bias)
    assert heads.shape[2] == 2 and torch.allclose(back, seen["attn"], atol=1e-5)


def test_the_top_units_are_the_most_active(tiny_ref, cat32):
    lm = load_model(tiny_ref, "cpu")
    top = top_units(lm, cat32, "channel", 3, k=5)
    x = activations(lm, cat32, [TapSite("encoder-3")])[TapSite("encoder-3")].mean(1)[0]
    assert [i for i, _ in top] == torch.topk(x, 5).indices.tolist()
    assert [v for _, v in top] == sorted((v for _, v in top), reverse=True)


def test_match_reconstructs_and_needs_an_image(tiny_ref, cat32):
    cfg = make_units_config(tiny_ref, ["match(1)"], steps=40, param="pixel", **STILL)
    u = visualise(cfg, cat32)
    assert u.scores[0] > 0.5 * u.start_scores[0]  # minus the distance: it rises towards 0
    with pytest.raises(ConfigError, match="image to match"):
        visualise(cfg)


def test_the_memo_remembers_a_run_and_not_a_stopped_one(tiny_ref, tmp_path):
    from vitrep.running.memo import get_memo

    memo = get_memo(tmp_path / "m")
    cfg = make_units_config(tiny_ref, ["mlp(1, 0)", "head(1, 1)"], steps=8, report_every=2)
    stopped = run_units(cfg, memo=memo, progress=lambda p: p.step >= 2)
    assert stopped.status == "stopped" and stopped.steps == 2
    first = run_units(cfg, memo=memo)
    again = run_units(cfg, memo=memo)
    assert first.status == "done" and not first.from_cache and again.from_cache
    assert again.scores == first.scores and all(np.array_equal(a, b) for a, b in zip(again.images, first.images))


def test_errors_are_one_sentence(tiny_ref, monkeypatch):
    with pytest.raises(ConfigError, match="no MLP hidden units"):
        visualise(make_units_config("resnet50", ["mlp(2, 0)"], steps=1))
    with pytest.raises(ConfigError, match="blocks 1 to 4"):
        make_units_config(tiny_ref, ["head(5, 0)"])
    with pytest.raises(ConfigError, match="heads 0-1"):
        visualise(make_units_config(tiny_ref, ["head(1, 2)"], steps=1))
    with pytest.raises(ConfigError, match="blur acts on pixels"):
        make_units_config(tiny_ref, ["mlp(1, 0)"], blur=True)
    assert unit_range("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(ConfigError):
        unit_range("3-1")
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    with pytest.raises(ConfigError, match="public server"):
        make_units_config(tiny_ref, [f"mlp(1, {i})" for i in range(16)], steps=500)


MODELS = [("vit_b_32", "6", "mlp"), ("resnet50", "layer3", "channel"), ("mixer_b16", "4", "mlp"),
          ("timm:vit_small_patch16_224", "6", "head"), ("timm:convnext_tiny", "3", "channel")]


@pytest.mark.parametrize("model,layer,kind", MODELS)
def test_the_command_visualises_units_of_every_kind_of_model(model, layer, kind, tmp_path, capsys):
    out = tmp_path / "units"
    assert main(["units", "--model", model, "--layer", layer, "--kind", kind, "--units", "0-1", "--steps", "3",
                 "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "result.json").read_text())
    assert doc["status"] == "done" and len(doc["scores"]) == 2 and all(math.isfinite(s) for s in doc["scores"])
    assert (out / "units.png").exists() and (out / "unit_01.png").exists()
    assert printed.startswith("done: 2 unit(s), 3 steps")


def test_the_one_call_api_ranks_units_on_an_image(tiny_ref):
    import vitrep

    report = vitrep.visualise(tiny_ref, layer=2, kind="mlp", image="cat", top=3, steps=4, cache_dir=False)
    assert report.lines[0].startswith("top 3 mlp units at 2 on the image")
    assert len(report.data.images) == 3 and report.data.config.objectives[0].startswith("mlp(2, ")


def test_a_swapped_stem_is_visualised_as_the_model_it_came_from(tmp_path):
    """Swaps apply unchanged: a stem channel of an untrained ViT with another model's stem swapped in is that
    other model's stem channel (the stem is all the tap reads)."""
    from vitrep.models.weights import build_model

    donor = make_ref("vit_custom", patch=P, width=32, depth=2, heads=2, size=64, seed=206)
    m, _ = build_model(donor)
    f = tmp_path / "donor.pt"
    torch.save(m.state_dict(), f)
    host = make_ref("vit_custom", patch=P, width=32, depth=2, heads=2, size=64, seed=207, swaps="stem",
                    swap_from=str(f))
    kw = dict(steps=8, param="pixel")
    swapped = visualise(make_units_config(host, ["channel('stem', 3)"], **kw))
    own = visualise(make_units_config(donor, ["channel('stem', 3)"], **kw))
    plain = visualise(make_units_config(make_ref("vit_custom", patch=P, width=32, depth=2, heads=2, size=64,
                                                 seed=207), ["channel('stem', 3)"], **kw))
    assert np.array_equal(swapped.images[0], own.images[0]) and not np.array_equal(plain.images[0], own.images[0])


def test_the_transforms_repeat_exactly_and_leave_the_global_generator_alone(tiny_ref):
    cfg = make_units_config(tiny_ref, ["mlp(1, 2)"], steps=5, jitter=4, scale=0.2, rotate=20.0)
    torch.manual_seed(123)
    a = visualise(cfg)
    after = torch.rand(3)
    torch.manual_seed(123)
    b = visualise(cfg)
    assert np.array_equal(a.images[0], b.images[0]) and torch.equal(after, torch.rand(3))
    still = visualise(make_units_config(tiny_ref, ["mlp(1, 2)"], steps=5, **STILL))
    assert not np.array_equal(a.images[0], still.images[0])  # the transforms did act
