"""Any timm model by name: DINO, CLIP and DINOv2-register ViTs, EVA, ResMLP, gMLP, ConvNeXt, ResNet."""

import os

import pytest
import torch

from vitrep.config import make_config
from vitrep.errors import ConfigError
from vitrep.images import prepare, sample_path
from vitrep.models.weights import build_model
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.reconstruction import reconstruct
from vitrep.models.taps import forward_tap

from .conftest import run_cli

# (name, shallow tap, deep tap, a removal its blocks have)
CASES = [("timm:vit_small_patch16_224.dino", "1", "12", "attention"),
         ("timm:vit_base_patch16_clip_224.openai", "1", "12", "mlp"),
         ("timm:eva02_tiny_patch14_224.mim_in22k", "1", "12", "attention"),
         ("timm:resmlp_12_224", "1", "12", "token_mixing"),
         ("timm:convnext_tiny", "stage-1", "block-18", "token_mixing")]


@pytest.mark.parametrize("name, shallow, deep, removal", CASES)
def test_a_timm_model_reconstructs_from_a_shallow_and_a_deep_tap_and_takes_a_removal(name, shallow, deep, removal):
    ref = make_ref(name)
    img = prepare(sample_path("cat"), ref.input_size)
    for tap in (shallow, deep):
        r = reconstruct(img, make_config(ref, tap, steps=2, report_every=1))
        start, end = r.curves["embedding_distance"][0], r.curves["embedding_distance"][-1]
        print(f"\n{name} {r.config.tap}: m_g {start:.4g} -> {end:.4g}, m_r {r.baseline['embedding_distance']:.4g}")
        assert r.status == "done" and end < start
    lm = load_model(ref)
    cut = make_config(ref, deep, remove=[removal], steps=1)
    whole = make_config(ref, deep, steps=1)
    with torch.no_grad():
        a = forward_tap(lm, img, whole.tap, surgery=whole.surgery)
        b = forward_tap(lm, img, cut.tap, surgery=cut.surgery)
    assert cut.surgery.remove and a.shape == b.shape and not torch.equal(a, b)  # the removal changed the layer


def test_an_intact_timm_vit_tap_is_the_models_own_forward():
    """Encoder 12 then the final norm, with the positional embedding, equals timm's forward_features."""
    ref = make_ref("timm:vit_small_patch14_reg4_dinov2.lvd142m")
    lm = load_model(ref)
    img = prepare(sample_path("cat"), ref.input_size)
    with torch.no_grad():
        mine = forward_tap(lm, img, "norm", pos_embed=True)
        theirs = lm.module.forward_features(img)
    assert mine.shape == theirs.shape == (1, 5 + 37 * 37, 384)  # class token, 4 registers, 37 x 37 patches
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def test_timm_convnext_and_eva_logits_are_the_models_own():
    for name in ("timm:convnext_tiny", "timm:eva02_tiny_patch14_224.mim_in22k"):
        ref = make_ref(name)
        lm = load_model(ref)
        img = prepare(sample_path("cat"), ref.input_size)
        with torch.no_grad():
            torch.testing.assert_close(forward_tap(lm, img, "logits", pos_embed=True), lm.module(img),
                                       rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, remove, words", [
    ("timm:convnext_tiny", "ln_2", "has no ln_2"),
    ("timm:gmlp_ti16_224", "attention", "not a removable component"),
])
def test_a_component_a_block_does_not_have_is_one_sentence(name, remove, words):
    with pytest.raises(ConfigError, match=words):
        make_config(name, 1, remove=remove)


@pytest.mark.parametrize("name, words", [
    ("timm:efficientnet_b0", "supported timm classes are VisionTransformer, Eva, MlpMixer, ResNet, ConvNeXt"),
    ("timm:no_such_net", "timm has no model called 'no_such_net'"),
])
def test_an_unsupported_or_unknown_timm_model_is_one_sentence(name, words):
    with pytest.raises(ConfigError, match=words):
        make_ref(name)


@pytest.mark.parametrize("name", ["timm:vit_small_patch14_reg4_dinov2.lvd142m", "timm:eva02_tiny_patch14_224.mim_in22k"])
def test_a_timm_vit_packs_what_its_memory_estimate_says(name, monkeypatch):
    """On the packed CPU path a ViT packs its patch embedding and plain MLPs; EVA's gated MLPs run as themselves.
    The estimate the memory budget reads (sizes.model_bytes) equals what a run packs; that the packed outputs are
    timm's is test_an_intact_timm_vit_tap_is_the_models_own_forward and the EVA logits test."""
    from vitrep.fast import linear as fastops
    from vitrep.models import pool, sizes
    from vitrep.models.taps import run_paths, tap_path

    if not fastops.enabled():
        pytest.skip("oneDNN's packed path is not available on this CPU")
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", "4096")
    lm = load_model(make_ref(name, seed=4), "cpu")
    x = torch.rand(1, 3, lm.size, lm.size, requires_grad=True)
    path = tap_path(lm, "logits")  # kept alive: a pack lives as long as the (reshaped) weight it packs
    run_paths(x, [path])[0].sum().backward()
    packs = fastops.pack_bytes(lm.module.parameters())
    assert packs > 0 and sizes.model_bytes(lm.ref, fast=True) == pool.module_bytes(lm.module) + packs


def test_a_hand_made_safetensors_file_loads_as_trained_weights(tmp_path):
    """Through the user-facing path: --weights FILE on the command line, and a swap from it."""
    from safetensors.torch import save_file

    name = "timm:vit_small_patch16_224.dino"
    donor, _ = build_model(make_ref(name, seed=3))
    f = tmp_path / "dino_standin.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(f))
    lm = load_model(make_ref(name, str(f)))
    assert torch.equal(lm.module.blocks[0].attn.qkv.weight, donor.blocks[0].attn.qkv.weight)
    swapped = load_model(make_ref(name, swaps="stem,ln_1", swap_from=str(f)))
    assert torch.equal(swapped.module.patch_embed.proj.weight, donor.patch_embed.proj.weight)
    assert not torch.equal(swapped.module.blocks[1].norm1.weight + 1, donor.blocks[1].norm1.weight)
    p = run_cli("reconstruct", "--image", "cat", "--model", name, "--weights", f, "--layer", "2", "--steps", "2",
                "--out", tmp_path / "o", "--quiet")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "o" / "result.json").is_file()


def test_a_timm_model_over_the_memory_budget_is_refused_in_one_sentence(tmp_path):
    p = run_cli("reconstruct", "--image", "cat", "--model", "timm:vit_large_patch16_224.augreg_in21k_ft_in1k",
                "--layer", "1", "--steps", "1", "--out", tmp_path, "--quiet", env=dict(os.environ, VITREP_MEMORY_MB="300"))
    assert p.returncode == 2 and "Traceback" not in p.stderr and "budget" in p.stderr, p.stderr


def test_models_command_searches_timm():
    p = run_cli("models", "--timm", "dino")
    assert p.returncode == 0, p.stderr
    assert "timm:vit_small_patch16_224.dino" in p.stdout
