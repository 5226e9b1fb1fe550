"""Registry, reproducible untrained models, checkpoints through the user-facing path, offline weights."""


import pytest
import torch
from safetensors.torch import save_file

from vitrep.models import pool, weights
from vitrep.errors import CheckpointError, ConfigError, WeightsUnavailable
from vitrep.models.registry import SPECS, get_spec, make_ref
from vitrep.models.weights import build_model, weights_identity
from vitrep.models.pool import load_model

from .conftest import run_cli


def _equal_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_registry_covers_the_paper():
    for name in ("vit_b_32", "vit_b_16", "vit_l_16", "vit_l_16_512", "vit_l_32", "vit_h_14", "vit_h_14_518",
                 "resnet50", "mixer_b16", "mixer", "ffvit", "vit_custom"):
        assert name in SPECS
    assert get_spec("vit_l_16_512").size == 512 and get_spec("vit_h_14_518").size == 518
    assert make_ref("mixer", patch=8, width=1024).arch() == {"patch": 8, "width": 1024, "depth": 8, "size": 224}


def test_untrained_is_reproducible_and_leaves_global_rng(tiny_ref):
    state = torch.random.get_rng_state()
    a, _ = build_model(tiny_ref)
    assert torch.equal(state, torch.random.get_rng_state())
    b, _ = build_model(tiny_ref)
    c, _ = build_model(make_ref("vit_custom", seed=1, patch=8, width=32, depth=4, heads=2, size=32))
    assert _equal_state(a.state_dict(), b.state_dict())
    assert not _equal_state(a.state_dict(), c.state_dict())


def test_loaded_model_is_frozen(tiny_ref):
    lm = load_model(tiny_ref, "cpu")
    assert not lm.module.training
    assert all(not p.requires_grad for p in lm.module.parameters())
    assert load_model(tiny_ref, "cpu") is lm  # shared, built once


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_checkpoint_loads_through_user_path(tmp_path, suffix):
    """A stand-in checkpoint: a real ViT-B/32 state_dict from another seed, saved and loaded as a user would."""
    donor_ref = make_ref("vit_b_32", seed=7)
    donor, _ = build_model(donor_ref)
    f = tmp_path / f"standin{suffix}"
    sd = {k: v.contiguous() for k, v in donor.state_dict().items()}
    torch.save(sd, f) if suffix == ".pt" else save_file(sd, str(f))
    ref = make_ref("vit_b_32", weights=str(f))
    loaded, identity = build_model(ref)
    assert _equal_state(loaded.state_dict(), donor.state_dict())
    assert identity.startswith("file:") and identity == weights_identity(ref)


def test_checkpoint_shape_mismatch_is_one_sentence(tmp_path):
    other, _ = build_model(make_ref("vit_custom", patch=8, width=48, depth=4, heads=2, size=32))
    f = tmp_path / "wrong.pt"
    torch.save(other.state_dict(), f)
    with pytest.raises(CheckpointError) as e:
        build_model(make_ref("vit_custom", weights=str(f), patch=8, width=32, depth=4, heads=2, size=32))
    assert "shape mismatch" in str(e.value) and "(file (1, 1, 48), model (1, 1, 32))" in str(e.value)


def test_checkpoint_missing_keys_reported(tmp_path):
    m, _ = build_model(make_ref("vit_custom", patch=8, width=32, depth=4, heads=2, size=32))
    sd = m.state_dict()
    sd.pop("heads.head.weight")
    sd["extra.thing"] = torch.zeros(1)
    f = tmp_path / "partial.pt"
    torch.save(sd, f)
    with pytest.raises(CheckpointError) as e:
        build_model(make_ref("vit_custom", weights=str(f), patch=8, width=32, depth=4, heads=2, size=32))
    assert "1 missing key(s) such as 'heads.head.weight'" in str(e.value)
    assert "1 unexpected key(s) such as 'extra.thing'" in str(e.value)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_code_is_refused(tmp_path):
    f = tmp_path / "evil.pt"
    torch.save({"w": _Evil()}, f)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        build_model(make_ref("vit_custom", weights=str(f)))


def test_not_a_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no file"):
        make_ref("vit_b_32", weights=str(tmp_path / "nothing.pt"))


def test_trained_offline_names_file_and_folder(monkeypatch, tmp_path):
    """The real download path, pointed at a closed local port (never a real download in tests)."""
    monkeypatch.setattr(weights, "weights_url", lambda src: f"http://127.0.0.1:9/{src.filename}")
    with pytest.raises(WeightsUnavailable) as e:
        build_model(make_ref("vit_b_32", weights="trained"))
    msg = e.value.say("cli")
    assert "vit_b_32-d86f8d99.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "--weights FILE" in msg and msg.count(". ") == 0 and msg.endswith(".")
    # the dashboard's sentence names its own widget, never a command-line flag
    ui = e.value.say("dashboard")
    assert "vit_b_32-d86f8d99.pth" in ui and "'checkpoint file'" in ui and "--" not in ui and ui.count(". ") == 0


def test_trained_found_in_cache_is_used(tmp_path):
    """A file placed where the message says is picked up with no download."""
    donor, _ = build_model(make_ref("vit_b_32", seed=3))
    dst = weights.hub_checkpoint_dir() / "vit_b_32-d86f8d99.pth"
    dst.parent.mkdir(parents=True)
    torch.save(donor.state_dict(), dst)
    assert weights.trained_file_local(get_spec("vit_b_32")) == dst
    m, identity = build_model(make_ref("vit_b_32", weights="trained"))
    assert identity == "trained:vit_b_32-d86f8d99.pth"
    assert _equal_state(m.state_dict(), donor.state_dict())


def test_timm_offline_sentence():
    with pytest.raises(WeightsUnavailable, match="model.safetensors of timm/mixer_b16_224"):
        build_model(make_ref("mixer_b16", weights="trained"))


def test_bad_names_and_options():
    with pytest.raises(ConfigError, match="no model called 'vit_z'"):
        make_ref("vit_z")
    with pytest.raises(ConfigError, match="fixed architecture"):
        make_ref("vit_b_32", patch=8)
    with pytest.raises(ConfigError, match="not a multiple of the patch"):
        make_ref("mixer", patch=10)


def test_cli_trained_offline_and_checkpoint(tmp_path):
    env_cmd = ["reconstruct", "--image", "cat", "--model", "vit_custom", "--steps", "2", "--quiet", "--out",
               str(tmp_path / "o")]
    p = run_cli("reconstruct", "--image", "cat", "--model", "vit_b_32", "--weights", "trained", "--steps", "2",
                "--out", tmp_path / "o", env=_offline_env(tmp_path))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "vit_b_32-d86f8d99.pth" in lines[0] and "--weights FILE" in lines[0]
    m, _ = build_model(make_ref("vit_custom", seed=5))
    f = tmp_path / "mine.pt"
    torch.save(m.state_dict(), f)
    p = run_cli(*env_cmd, "--weights", f)
    assert p.returncode == 0, p.stderr


def _offline_env(tmp_path):
    import os

    env = dict(os.environ)
    env["VITREP_OFFLINE"] = "1"  # the CLI subprocess must not try the network either
    return env


def test_cli_models_lists_everything():
    p = run_cli("models")
    assert p.returncode == 0
    for name in SPECS:
        assert name in p.stdout
    assert "trained here" in p.stdout


# --- issue 19: the model cache's lock -------------------------------------------------------------

def test_a_cached_lookup_does_not_wait_for_another_models_build(monkeypatch):
    """pool._LOCK was held through a whole build (a cached lookup waited 3.5 s).  Now a build holds only its
    own key's lock: while one model is being built, a cached one is returned, and a second caller of the model
    under construction waits for that one build instead of starting another."""
    import threading

    cached_ref = make_ref("vit_custom", seed=11, width=32, heads=2)
    building_ref = make_ref("vit_custom", seed=12, width=32, heads=2)
    cached = load_model(cached_ref, "cpu")
    started, go, builds = threading.Event(), threading.Event(), []
    real_build = pool.build_model

    def held_build(ref, progress=False):
        if ref == building_ref:
            builds.append(ref)
            started.set()
            go.wait(60)  # the build of building_ref stays under way until the test lets it go
        return real_build(ref, progress)

    monkeypatch.setattr(pool, "build_model", held_build)
    got = {}
    builder = threading.Thread(target=lambda: got.setdefault("first", load_model(building_ref, "cpu")))
    second = threading.Thread(target=lambda: got.setdefault("second", load_model(building_ref, "cpu")))
    lookup = threading.Thread(target=lambda: got.setdefault("cached", load_model(cached_ref, "cpu")))
    try:
        builder.start()
        assert started.wait(60)
        second.start()
        lookup.start()
        lookup.join(60)
        assert not lookup.is_alive() and got["cached"] is cached  # answered while the other build is under way
        assert builder.is_alive() and "first" not in got  # ... which it did not wait for
    finally:
        go.set()
        builder.join(60)
        second.join(60)
    assert got["first"] is got["second"] and builds == [building_ref]  # built once for both callers
    assert pool._BUILDS == {} and pool._PENDING == {}
