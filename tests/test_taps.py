"""Taps: right shapes, equal to the models' own forwards, and the switches do what they say."""

import pytest
import torch

from .conftest import assert_float32_close

from vitrep.errors import ConfigError
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.models.families import get_family
from vitrep.models.taps import forward_tap, run_paths, tap_path


def parse_tap(text, family, depth):
    return get_family(family).parse_tap(text, depth)


@pytest.fixture(scope="module")
def vit():
    return load_model(make_ref("vit_b_32"), "cpu")


@pytest.fixture(scope="module")
def resnet():
    return load_model(make_ref("resnet50"), "cpu")


@pytest.fixture(scope="module")
def mixer():
    return load_model(make_ref("mixer", patch=16, width=64, depth=3, size=64), "cpu")


@pytest.fixture(scope="module")
def ffvit():
    return load_model(make_ref("ffvit", patch=16, width=64, depth=3, size=64), "cpu")


@pytest.fixture(scope="module")
def x224():
    return torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def x64():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_vit_shapes(vit, x224):
    with torch.no_grad():
        assert forward_tap(vit, x224, "stem").shape == (1, 49, 768)
        assert forward_tap(vit, x224, "embed").shape == (1, 50, 768)
        for k in (1, 6, 12):
            assert forward_tap(vit, x224, f"encoder-{k}").shape == (1, 50, 768)
            assert forward_tap(vit, x224, f"only-encoder-{k}").shape == (1, 50, 768)
        assert forward_tap(vit, x224, "norm").shape == (1, 50, 768)
        assert forward_tap(vit, x224, "logits").shape == (1, 1000)


def test_vit_encoder_tap_equals_torchvision_forward(vit, x224):
    """The taps compute torchvision's forward (the plain path; the fast path is held to this one in test_fast_paths)."""
    seen = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o))
             for k, layer in enumerate(vit.module.encoder.layers, 1)]
    try:
        with torch.no_grad():
            logits = vit.module(x224)
    finally:
        for h in hooks:
            h.remove()
    # the engine's stem is a matrix product where torchvision convolves: the same sums in another order,
    # so the two agree to float32 rounding through 1 + 4k products (the stem, then 4 per encoder)
    with torch.no_grad():
        for k in (1, 4, 12):
            assert_float32_close(forward_tap(vit, x224, f"encoder-{k}", fast=False), seen[k], products=1 + 4 * k)
        assert_float32_close(forward_tap(vit, x224, "logits", fast=False), logits, products=1 + 4 * 12 + 1)


def test_only_encoder_differs_from_after(vit, x224):
    with torch.no_grad():
        after, only = forward_tap(vit, x224, "encoder-3"), forward_tap(vit, x224, "only-encoder-3")
        assert (after - only).norm() > 0.1 * after.norm()
        torch.testing.assert_close(forward_tap(vit, x224, "only-encoder-1"), forward_tap(vit, x224, "encoder-1"))
        # "only encoder 3" is embed followed by that one block
        direct = vit.module.encoder.layers[2](forward_tap(vit, x224, "embed"))
        torch.testing.assert_close(only, direct)


def test_pos_embed_switch_changes_output(vit, x224):
    with torch.no_grad():
        with_pos = forward_tap(vit, x224, "encoder-2", pos_embed=True)
        without = forward_tap(vit, x224, "encoder-2", pos_embed=False)
        assert (with_pos - without).norm() > 1e-3 * with_pos.norm()
        # the paper's form: class token prepended, no position, straight into the blocks
        m = vit.module
        x = torch.cat([m.class_token, m._process_input(x224)], 1)
        torch.testing.assert_close(without, m.encoder.layers[1](m.encoder.layers[0](x)))


def test_resnet_taps_equal_forward(resnet, x224):
    seen = {}
    m = resnet.module
    names = {"conv1": m.conv1, "layer1": m.layer1, "layer2": m.layer2, "layer3": m.layer3, "layer4": m.layer4,
             "layer3.2": m.layer3[1]}
    hooks = [mod.register_forward_hook(lambda _m, i, o, n=n: seen.__setitem__(n, o)) for n, mod in names.items()]
    try:
        with torch.no_grad():
            logits = m(x224)
    finally:
        for h in hooks:
            h.remove()
    shapes = {"conv1": (1, 64, 112, 112), "stem": (1, 64, 56, 56), "layer1": (1, 256, 56, 56),
              "layer2": (1, 512, 28, 28), "layer3": (1, 1024, 14, 14), "layer3.2": (1, 1024, 14, 14),
              "layer4": (1, 2048, 7, 7), "pool": (1, 2048), "logits": (1, 1000)}
    with torch.no_grad():
        for tap, shape in shapes.items():
            out = forward_tap(resnet, x224, tap, fast=False)
            assert out.shape == shape, tap
            if tap in seen:
                torch.testing.assert_close(out, seen[tap], rtol=0, atol=1e-5)
        torch.testing.assert_close(forward_tap(resnet, x224, "logits", fast=False), logits, rtol=0, atol=1e-5)


def test_mixer_taps(mixer, x64):
    m = mixer.module
    with torch.no_grad():
        assert forward_tap(mixer, x64, "stem").shape == (2, 16, 64)
        assert forward_tap(mixer, x64, "block-2").shape == (2, 16, 64)
        torch.testing.assert_close(forward_tap(mixer, x64, "block-3"), m.blocks(m.stem(x64)))
        torch.testing.assert_close(forward_tap(mixer, x64, "logits"), m(x64), rtol=0, atol=1e-5)
        assert (forward_tap(mixer, x64, "only-block-2") - forward_tap(mixer, x64, "block-2")).norm() > 1e-3


def test_ffvit_taps(ffvit, x64):
    with torch.no_grad():
        assert forward_tap(ffvit, x64, "stem").shape == (2, 16, 64)
        assert forward_tap(ffvit, x64, "encoder-3").shape == (2, 17, 64)
        torch.testing.assert_close(forward_tap(ffvit, x64, "logits"), ffvit.module(x64), rtol=0, atol=1e-5)


def test_every_listed_tap_runs(mixer, ffvit, x64):
    for lm in (mixer, ffvit):
        with torch.no_grad():
            for tap in lm.adapter.taps(lm.depth):
                assert forward_tap(lm, x64, tap).shape[0] == 2


def test_run_paths_shares_prefixes_and_matches_single(vit, x224):
    taps = ["encoder-1", "encoder-4", "only-encoder-4", "stem", "logits"]
    x = x224.expand(len(taps), -1, -1, -1)
    calls = []
    paths = [tap_path(vit, t) for t in taps]
    counted = [[type(op)(op.key, (lambda f, k: (lambda z: calls.append(k) or f(z)))(op.fn, op.key)) for op in p]
               for p in paths]
    with torch.no_grad():
        outs = run_paths(x, counted)
        for t, o in zip(taps, outs):
            torch.testing.assert_close(o, forward_tap(vit, x224, t)[0], rtol=0, atol=1e-5)
    assert calls.count(("stem",)) == 1  # one stem for all five rows
    assert calls.count(("embed", True)) == 1  # the stem row stops before it
    assert calls.count(("block", 1, frozenset())) == 1  # shared by encoder-1, encoder-4 and logits
    assert calls.count(("block", 4, frozenset())) == 2  # encoder-4 with logits, and only-encoder-4 on its own


def test_parse_tap():
    assert parse_tap(3, "vit", 12) == "encoder-3"
    assert parse_tap("only encoder 2", "vit", 12) == "only-encoder-2"
    assert parse_tap("Final norm", "vit", 12) == "norm"
    assert parse_tap("2", "mixer", 8) == "block-2"
    assert parse_tap("3", "resnet", 4) == "layer3"
    assert parse_tap("layer3.2", "resnet", 4) == "layer3.2"
    with pytest.raises(ConfigError, match="encoders 1 to 12"):
        parse_tap(13, "vit", 12)
    with pytest.raises(ConfigError, match="not a ResNet-50 layer"):
        parse_tap("layer9", "resnet", 4)
    with pytest.raises(ConfigError, match="not a layer"):
        parse_tap("banana", "vit", 12)


def test_patch_embedding_matmul_equals_the_stem_convolution(vit, ffvit, x224, x64):
    from vitrep.models.families.base import patch_product

    for lm, x in ((vit, x224), (ffvit, x64)):
        xs = x.clone().requires_grad_(True)
        ys = x.clone().requires_grad_(True)
        a, b = patch_product(lm.module.conv_proj, lm.size, None)(xs), lm.module._process_input(ys)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        (ga,) = torch.autograd.grad(a.square().sum(), xs)
        (gb,) = torch.autograd.grad(b.square().sum(), ys)
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)


def test_normalize_feeds_the_model_imagenet_normalised_pixels():
    """normalize=True must equal feeding (x - mean) / std to the plain path, and differ from raw pixels."""
    from vitrep.models.families.base import IMAGENET_MEAN, IMAGENET_STD

    lm = load_model(make_ref("vit_custom", patch=8, width=32, depth=2, heads=2, size=32), "cpu")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        a = forward_tap(lm, x, "encoder-2", normalize=True)
        b = forward_tap(lm, (x - mean) / std, "encoder-2")
        c = forward_tap(lm, x, "encoder-2")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert (a - c).abs().max() > 0.1
