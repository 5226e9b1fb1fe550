"""Family adapters: the one place that knows a kind of network; DeiT, a timm model under a short name.

The DeiT family (``deit``: timm's VisionTransformer, untrained deit_tiny) is
served by the one adapter of timm's ViTs (``vitrep/models/families/timm_vit.py``)
with its entry in the registry: these tests show it working through every
user-facing path (engine, CLI, dashboard) with no change to the CLI or the
dashboard, and that ``deit_tiny`` is ``timm:deit_tiny_patch16_224`` under
another name.
"""

import json
import re

import pytest
import torch
from streamlit.testing.v1 import AppTest

from vitrep.models import pool, sizes
from vitrep.fast import linear as fastops
from vitrep.calibration import default_schedule
from vitrep.models.families import FAMILIES, get_family
from vitrep.models.families.timm_models import timm_spec
from vitrep.filters import filter_grid
from vitrep.models.registry import SPECS, make_ref
from vitrep.models.pool import load_model
from vitrep.models.weights import build_model
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct
from vitrep.models.taps import forward_tap, run_paths, tap_path

from .conftest import ROOT, assert_float32_close, run_cli
from .test_surgery import vit_formula

G = torch.Generator().manual_seed(0)
DEIT = get_family("deit")


@pytest.fixture(scope="module")
def deit():
    return load_model(make_ref("deit_tiny"), "cpu")


@pytest.fixture(scope="module")
def x224():
    return torch.rand(2, 3, 224, 224, generator=G)


def test_no_family_checks_outside_the_adapters():
    """Model-family knowledge lives in vitrep/families only: nothing else asks which family a model is."""
    pattern = re.compile(r"family\s*(==|!=|\bin\b)|\[\s*[\w.]*family\s*\]")
    offenders = []
    for path in [*ROOT.glob("vitrep/**/*.py"), *ROOT.glob("dashboard/**/*.py"), *ROOT.glob("app_pages/*.py"),
                 ROOT / "app.py"]:
        if "families" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_spec_belongs_to_a_registered_family_and_says_its_parts():
    assert set(FAMILIES) == {"vit", "resnet", "mixer", "ffvit", "deit"}
    for name, spec in SPECS.items():
        adapter = spec.adapter
        assert spec in adapter.specs
        ref = make_ref(name)
        taps = adapter.taps(ref.num_blocks)
        assert set(adapter.sweep_taps(ref.num_blocks)) <= set(taps) and set(adapter.picker_taps(ref.num_blocks)) <= set(taps)
        assert adapter.default_layer(ref.num_blocks) in taps
        for t in taps:  # every canonical tap reads back as itself
            assert adapter.parse_tap(t, ref.num_blocks) == t
        assert adapter.components and adapter.first_conv and adapter.classifier and "stem" in adapter.swap_aliases


def test_deit_tiny_is_a_timm_name_like_any_other():
    """The short name's spec agrees with what timm_spec reads off the model, and both build the same network."""
    short, long = make_ref("deit_tiny").spec, timm_spec("timm:deit_tiny_patch16_224")
    assert type(short.adapter) is type(long.adapter)
    assert (short.size, short.depth, short.mean, short.std, short.trained) == \
        (long.size, long.depth, long.mean, long.std, long.trained)
    (a, _), (b, _) = build_model(make_ref("deit_tiny", seed=3)), build_model(make_ref("timm:deit_tiny_patch16_224", seed=3))
    assert a.state_dict().keys() == b.state_dict().keys()
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert short.adapter.packable_bytes(a) == long.adapter.packable_bytes(b) > 0


def test_deit_taps_follow_timm_forward(deit, x224):
    m = deit.module
    per_block = 6  # matrix products in series in one block: qkv, q.k, attention.v, proj, fc1, fc2
    norm, logits = 1 + 12 * per_block, 2 + 12 * per_block  # the patch product first, the head last
    with torch.no_grad():
        feats = m.forward_features(x224)  # patch embed, class token, positions, blocks, norm
        assert_float32_close(forward_tap(deit, x224, "norm", fast=False), feats, norm)
        assert_float32_close(forward_tap(deit, x224, "norm", fast=True), feats, norm)
        assert_float32_close(forward_tap(deit, x224, "logits", fast=False), m(x224), logits)
        assert_float32_close(forward_tap(deit, x224, "logits", fast=True), m(x224), logits)
        assert forward_tap(deit, x224, "stem").shape == (2, 196, 192)
        assert forward_tap(deit, x224, "embed", pos_embed=False).shape == (2, 197, 192)
        # encoder k is the first k of timm's blocks after the embedding
        h = m._pos_embed(m.patch_embed(x224))
        for blk in m.blocks[:3]:
            h = blk(h)
        assert_float32_close(forward_tap(deit, x224, "encoder-3"), h, 1 + 3 * per_block)


@pytest.mark.parametrize("component", DEIT.components)
def test_deit_removal_deletes_its_line(deit, component):
    b = deit.module.blocks[1]
    x = torch.randn(2, 197, 192, generator=G)
    with torch.no_grad():
        intact = DEIT.block_forward(b, x, frozenset())
        torch.testing.assert_close(intact, b(x), rtol=0, atol=0)  # nothing removed: timm's own block
        assert_float32_close(DEIT.block_forward(b, x, frozenset(), fast=True), intact, 6)  # a block: 6 products
        removed = DEIT.block_forward(b, x, frozenset({component}))
        assert_float32_close(removed, vit_formula(b.norm1, b.attn, b.norm2, b.mlp, x, component), 6)
        assert_float32_close(DEIT.block_forward(b, x, frozenset({component}), fast=True), removed, 6)
        # timm initialises the branches small (std 0.02) beside the residual stream, so a removal moves the
        # output by 1e-4 of its size or more: still a hundred times float32 rounding through one block
        assert (removed - intact).norm() > 1e-4 * intact.norm()


def test_deit_reconstructs_with_vit_step_sizes(deit):
    cfg = make_config("deit_tiny", "only encoder 2", remove="attention", blocks="2", steps=4, report_every=2)
    assert cfg.tap == "only-encoder-2" and cfg.surgery.remove == ("attention",)
    assert (cfg.optimizer, cfg.lr_start, cfg.lr_end) == default_schedule(make_ref("vit_b_32"), cfg.tap)
    img = torch.rand(1, 3, 224, 224, generator=G)
    r = reconstruct(img, cfg, lm=deit)
    assert r.status == "done" and r.curves["step"] == [0, 2, 4]
    assert r.curves["loss"][-1] < r.curves["loss"][0]


def test_deit_swaps_stem_filters_and_packs(monkeypatch):
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", "4096")
    a = load_model(make_ref("deit_tiny", seed=1), "cpu").module
    b = load_model(make_ref("deit_tiny", seed=0, swaps="stem,final_norm", swap_from="untrained"), "cpu").module
    torch.testing.assert_close(b.patch_embed.proj.weight, load_model(make_ref("deit_tiny"), "cpu").module.patch_embed.proj.weight)
    assert not torch.equal(a.patch_embed.proj.weight, b.patch_embed.proj.weight)
    g = filter_grid(load_model(make_ref("deit_tiny"), "cpu"))
    assert g.tiles.shape == (192, 16, 16, 3)
    # the memory budget's estimate of the packed path equals what a real run packs
    lm = load_model(make_ref("deit_tiny", seed=2), "cpu")
    if not fastops.enabled():
        pytest.skip("oneDNN's packed path is not available on this CPU")
    x = torch.rand(1, 3, 224, 224, requires_grad=True)
    path = tap_path(lm, "logits")
    run_paths(x, [path])[0].sum().backward()
    packs = fastops.pack_bytes(lm.module.parameters())
    assert packs > 0 and sizes.model_bytes(lm.ref, fast=True) == pool.module_bytes(lm.module) + packs


def test_deit_on_the_command_line(tmp_path):
    listing = run_cli("models", "--json")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    row = next(r for r in json.loads(out) if r["name"] == "deit_tiny")
    assert row["family"] == "deit" and row["depth"] == 12 and "only-encoder-k" in row["taps"]
    p = run_cli("sweep", "--model", "deit_tiny", "--layers", "1,norm", "--surgeries", "none;attention", "--steps", "2",
                "--quiet", "--no-cache", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == 1 + 4
    bad = run_cli("reconstruct", "--model", "deit_tiny", "--layer", "13", "--image", "cat", "--no-cache")
    assert bad.returncode == 2 and "encoders 1 to 12" in bad.stderr and "Traceback" not in bad.stderr


def test_deit_in_the_dashboard():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.switch_page("app_pages/ablation.py")
    at.run()
    at.selectbox(key="ab_model").set_value("deit_tiny")
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="ab_layer").value == "encoder-4"
    assert list(at.multiselect(key="ab_comps").options) == list(DEIT.components)
    assert set(at.multiselect(key="ab_swaps").options) == set(DEIT.swap_aliases)
