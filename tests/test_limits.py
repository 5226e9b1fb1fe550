"""Public mode's limits, enforced by the engine (config validation), and the memory rules of every mode."""

import tomllib
from pathlib import Path

import pytest
import torch

from vitrep import limits
from vitrep.models import sizes
from vitrep.models.sizes import MemoryBudgetError
from vitrep.config import ReconstructConfig, make_config, validate
from vitrep.errors import ConfigError
from vitrep.generate import make_generate_config
from vitrep.models.registry import ModelRef, make_ref
from vitrep.models.weights import build_model
from vitrep.running.runs import prepare_job, run_batch

from .conftest import ROOT


@pytest.fixture
def public(monkeypatch, tmp_path):
    """Public mode, with its upload root in this test's folder and the budget left at public mode's default."""
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    monkeypatch.setenv("VITREP_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.delenv("VITREP_MEMORY_MB", raising=False)
    (tmp_path / "uploads").mkdir()
    return tmp_path / "uploads"


def _checkpoint(path: Path, **arch) -> Path:
    m, _ = build_model(make_ref("vit_custom", seed=3, **arch))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), path)
    return path


# --- the memory budget ----------------------------------------------------------------------------

def test_public_mode_always_has_a_budget(monkeypatch):
    """min(1,800 MB, 2/3 of the memory) in public mode on any machine; local mode keeps none at 4 GB and above."""
    monkeypatch.delenv("VITREP_MEMORY_MB", raising=False)
    assert limits.default_budget_mb(64_000, public=True) == 1800
    assert limits.default_budget_mb(24_000, public=True) == 1800
    assert limits.default_budget_mb(2400, public=True) == 1600  # two thirds of a small machine
    assert limits.default_budget_mb(None, public=True) == 1800  # memory unknown
    assert limits.default_budget_mb(64_000) is None
    total = limits.machine_memory_mb()
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    assert limits.memory_budget_mb() == min(1800, total * 2 // 3)
    monkeypatch.setenv("VITREP_MEMORY_MB", "2500")  # a number the operator sets still wins
    assert limits.memory_budget_mb() == 2500
    monkeypatch.setenv("VITREP_MEMORY_MB", "unlimited")
    with pytest.raises(ConfigError, match=r"^A public server always keeps a memory budget, so VITREP_MEMORY_MB must "
                                          r"be a number of megabytes there, not 'unlimited'\.$"):
        limits.memory_budget_mb()
    monkeypatch.setenv("VITREP_PUBLIC", "0")
    assert limits.memory_budget_mb() is None


def test_public_mode_evicts_models_beyond_its_default_budget(public):
    """The probe: on a machine of 4 GB or more, public mode kept every model (40 seeds, none evicted).  Now its
    default budget holds: real Mixers (about 0.7 GB each with their packs) are evicted least recently used first."""
    from vitrep.models import pool

    pool.evict_models()
    limit = limits.memory_budget_bytes()
    assert limit == min(1800, limits.machine_memory_mb() * 2 // 3) * 2 ** 20
    refs = [make_ref("mixer", seed=s) for s in range(4)]
    try:
        for r in refs:
            pool.load_model(r, "cpu")
            assert pool.cache_bytes() <= limit
        cached = [pool.is_cached(r, "cpu") for r in refs]
        assert cached[-1] and not all(cached) and not cached[0]
    finally:
        pool.evict_models()


# --- public limits in the engine ------------------------------------------------------------------

def test_public_limits_are_the_engines(public, tmp_path):
    """make_config in public mode: 10**12 steps, /etc/passwd, a server path to swap from, a huge architecture."""
    with pytest.raises(ConfigError, match=r"^This public server runs at most 1,000 steps, not 1,000,000,000,000; "):
        make_config("vit_custom", 1, steps=10 ** 12)
    with pytest.raises(ConfigError, match=r"^This public server runs at most 1,000 steps, not 100,000; "):
        make_config("vit_custom", 1, steps=100_000)
    assert make_config("vit_custom", 1, steps=1000).steps == 1000
    with pytest.raises(ConfigError, match=r"^On this public server the weights must be 'trained', 'untrained' or an "
                                          r"uploaded checkpoint, not a path on the server\.$"):
        make_config("vit_custom", 1, weights="/etc/passwd")
    server_file = _checkpoint(tmp_path / "server" / "w.pt")
    with pytest.raises(ConfigError, match=r"^On this public server the swap source must be"):
        make_config("vit_custom", 1, swaps="stem", swap_from=str(server_file))
    with pytest.raises(ConfigError, match=r"^This public server takes width at most 96 for vit_custom, not 100000; "):
        make_config("vit_custom", 1, width=100_000, depth=1000)
    with pytest.raises(ConfigError, match=r"^This public server takes depth at most 4 for vit_custom, not 1000; "):
        make_config("vit_custom", 1, depth=1000)
    with pytest.raises(ConfigError, match=r"^This public server takes size at most 64 for vit_custom, not 4096; "):
        make_config("vit_custom", 1, size=4096)
    with pytest.raises(ConfigError, match=r"^This public server takes patch at least 4 for vit_custom, not 2; "):
        make_config("vit_custom", 1, patch=2)
    with pytest.raises(ConfigError, match=r"^This public server takes size at most 224 for resnet50, not 1024; "):
        make_config("resnet50", "layer1", size=1024)
    with pytest.raises(ConfigError, match=r"^This public server takes patch at least 8 for mixer, not 4; "):
        make_config("mixer", "block-1", patch=4)
    assert make_config("mixer", "block-1", patch=8).model.patch == 8  # figure 16's patch-8 Mixer stays
    # a config built by hand (no make_ref) is checked by validate just the same
    with pytest.raises(ConfigError, match="weights must be 'trained', 'untrained' or an uploaded checkpoint"):
        validate(ReconstructConfig(model=ModelRef("vit_custom", weights="/etc/passwd")))
    with pytest.raises(ConfigError, match=r"^This public server runs at most 1,000 steps, not 5,000; "):
        make_generate_config(make_ref("vit_custom"), 3, steps=5000)


def test_uploads_are_the_only_checkpoints_in_public_mode(public, tmp_path):
    """Inside the upload root: taken.  A symlink or a '..' that leads out of it: refused (paths are resolved)."""
    inside = _checkpoint(public / "session-1" / "w.pt")
    assert make_config("vit_custom", 1, weights=str(inside), steps=2).model.weights == str(inside)
    assert make_config("vit_custom", 1, swaps="stem", swap_from=str(inside), steps=2).model.swap_from == str(inside)
    outside = _checkpoint(tmp_path / "elsewhere" / "w.pt")
    link = public / "session-1" / "link.pt"
    link.symlink_to(outside)
    dotted = public / "session-1" / ".." / ".." / "elsewhere" / "w.pt"
    assert dotted.is_file()
    for sneaky in (link, dotted):
        with pytest.raises(ConfigError, match="not a path on the server"):
            make_config("vit_custom", 1, weights=str(sneaky))
    (public / "session-1" / "etc").symlink_to("/etc")
    with pytest.raises(ConfigError, match="not a path on the server"):
        make_config("vit_custom", 1, weights=str(public / "session-1" / "etc" / "passwd"))
    assert not limits.inside_upload_root(public)  # the root itself is no file to load


def test_local_mode_keeps_paths_and_large_runs(monkeypatch, tmp_path):
    monkeypatch.delenv("VITREP_PUBLIC", raising=False)
    f = _checkpoint(tmp_path / "anywhere" / "w.pt")
    c = make_config("vit_custom", 1, weights=str(f), steps=100_000, width=128, heads=4)
    assert c.steps == 100_000 and c.model.width == 128 and c.model.weights == str(f)
    with pytest.raises(ConfigError, match=r"^Steps must be at most 10,000,000, not 10,000,000,000\.$"):
        make_config("vit_custom", 1, steps=10 ** 10)
    with pytest.raises(ConfigError, match=r"^width must be a whole number from 1 to 65,536, not 1000000000\.$"):
        make_ref("vit_custom", width=10 ** 9)


# --- a row that could never run ---------------------------------------------------------------------

def test_an_impossible_row_is_refused_in_every_mode_before_any_work(monkeypatch, cat32):
    """ViT at 4096 px: about 8,000 GiB for one row by the engine's own estimate.  Refused with one sentence,
    under a budget and without one (the machine's memory), before a model is built."""
    from vitrep.models import pool

    ref = make_ref("vit_custom", size=4096)
    cfg = make_config(ref, 1, steps=2, device="cpu")  # a CPU row: the host's budget or memory is the limit
    monkeypatch.delenv("VITREP_PUBLIC", raising=False)
    for memory in ("1800", "unlimited"):
        monkeypatch.setenv("VITREP_MEMORY_MB", memory)
        pool.evict_models()
        with pytest.raises(MemoryBudgetError) as e:
            prepare_job(cat32, cfg)
        msg = str(e.value)
        assert msg.startswith("vit_custom (patch 8, width 96, depth 4, heads 4, size 4096) reconstructing from "
                              "encoder-1 needs about ")
        assert ("this server's 1.8 GB memory budget" if memory == "1800" else "this machine's") in msg
        assert msg.endswith("; choose a smaller architecture or an earlier layer.") and "\n" not in msg
        with pytest.raises(MemoryBudgetError):
            run_batch([cat32], [cfg])
        assert not pool.is_cached(ref, "cpu")  # no work was done: not even the model was built


# --- the dashboard's upload cap matches the checkpoint limit ---------------------------------------

@pytest.mark.parametrize("path", [".streamlit/config.toml", "deploy/.streamlit/config.toml"])
def test_the_upload_cap_is_the_checkpoint_limit(path):
    """Streamlit refuses uploads above server.maxUploadSize on the server: it must let the largest checkpoint a
    public server takes through (it was 20 MB and 10 MB against a 100 MB checkpoint limit)."""
    cap = tomllib.loads((ROOT / path).read_text())["server"]["maxUploadSize"]
    assert cap == limits.PUBLIC_CHECKPOINT_MB
    assert cap >= limits.PUBLIC_IMAGE_MB


def test_limits_is_a_leaf():
    """vitrep/limits.py imports nothing from vitrep but vitrep.errors (the dashboard and every engine module read it)."""
    import ast

    tree = ast.parse((ROOT / "vitrep" / "limits.py").read_text())
    inner = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("vitrep"))]
    assert [(n.module, n.level) for n in inner] == [("errors", 1)]
    assert not hasattr(sizes, "public_mode") and not hasattr(sizes, "memory_budget_mb")  # moved, no shims


def test_queue_limit_is_eight_in_public_mode(monkeypatch):
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    assert limits.queue_limit() == 8
    monkeypatch.setenv("VITREP_PUBLIC", "")
    assert limits.queue_limit() is None
