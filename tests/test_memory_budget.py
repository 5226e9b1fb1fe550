"""The memory budget: parsing, sizes without building, LRU eviction of real models and their packs, batch chunks."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vitrep import limits
from vitrep.models import pool, sizes
from vitrep.running import chunks
from vitrep.fast import linear as fastops
from vitrep.models.sizes import MemoryBudgetError
from vitrep.errors import ConfigError, VitrepError
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.models.taps import run_paths, tap_path

from .conftest import ROOT

needs_packs = pytest.mark.skipif(not fastops.enabled(), reason="oneDNN's packed linear is not in this torch build")


def _mid(seed: int = 0, width: int = 256):
    """A real 4-encoder torchvision ViT of width 256: 13 MB of weights, 24 MB of packs once used."""
    return make_ref("vit_custom", seed=seed, patch=8, width=width, depth=4, heads=4, size=64)


def _use(lm, tap: str = "encoder-4") -> torch.Tensor:
    """One forward and backward on the model's path (makes its packs, as a reconstruction step does)."""
    x = torch.rand(1, 3, lm.size, lm.size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    (out,) = run_paths(x, [tap_path(lm, tap)])
    out.sum().backward()
    return out.detach()


@pytest.fixture
def empty_cache():
    """Start from no cached models (other tests' models would count against a small budget)."""
    pool.evict_models()
    yield
    pool.evict_models()


# --- the budget itself (the number: vitrep.limits; tests/test_limits.py has public mode's) -----------

def test_memory_budget_from_the_environment(monkeypatch):
    monkeypatch.delenv("VITREP_PUBLIC", raising=False)
    monkeypatch.setenv("VITREP_MEMORY_MB", "1800")
    assert limits.memory_budget_mb() == 1800 and limits.memory_budget_bytes() == 1800 * 2 ** 20
    for off in ("unlimited", "0", "none"):
        monkeypatch.setenv("VITREP_MEMORY_MB", off)
        assert limits.memory_budget_mb() is None
    monkeypatch.setenv("VITREP_MEMORY_MB", "lots")
    with pytest.raises(ConfigError, match=r"^VITREP_MEMORY_MB must be a number of megabytes or 'unlimited', not 'lots'\.$"):
        limits.memory_budget_mb()


def test_default_budget_only_on_a_small_machine(monkeypatch):
    monkeypatch.delenv("VITREP_PUBLIC", raising=False)
    assert limits.default_budget_mb(2700) == 1800  # Streamlit Community Cloud's largest
    assert limits.default_budget_mb(1200) == 800  # two thirds of a small one
    assert limits.default_budget_mb(4096) is None and limits.default_budget_mb(24000) is None
    total = limits.machine_memory_mb()
    meminfo = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    assert 0 < total <= meminfo // 1024
    monkeypatch.delenv("VITREP_MEMORY_MB", raising=False)
    assert limits.memory_budget_mb() == limits.default_budget_mb(total)


def test_public_mode(monkeypatch):
    monkeypatch.delenv("VITREP_PUBLIC", raising=False)
    assert not limits.public_mode()
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    assert limits.public_mode()
    monkeypatch.setenv("VITREP_PUBLIC", "0")
    assert not limits.public_mode()


def test_pack_budget_is_a_share_of_the_memory_budget(monkeypatch):
    monkeypatch.delenv("VITREP_FAST_BUDGET_MB", raising=False)
    monkeypatch.setenv("VITREP_MEMORY_MB", "2000")
    assert limits.pack_limit_bytes() == 1000 * 2 ** 20
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", "300")  # an explicit pack budget wins
    assert limits.pack_limit_bytes() == 300 * 2 ** 20
    monkeypatch.delenv("VITREP_FAST_BUDGET_MB")
    monkeypatch.setenv("VITREP_MEMORY_MB", "unlimited")
    assert limits.pack_limit_bytes() == 3072 * 2 ** 20


# --- sizes without building -----------------------------------------------------------------------

def test_model_bytes_equal_a_real_vit_b_32():
    ref = make_ref("vit_b_32")
    real, _ = pool.build_model(ref)
    assert sizes.param_bytes(ref) == pool.module_bytes(real) == 88_224_232 * 4
    assert sizes.model_bytes(ref, fast=False) == sizes.param_bytes(ref)
    # parameters, batch-norm statistics (float32) and their 53 int64 step counters
    assert sizes.param_bytes(make_ref("resnet50")) == (25_557_032 + 53_120) * 4 + 53 * 8


@needs_packs
def test_model_bytes_count_the_packs_a_real_run_makes(monkeypatch, empty_cache):
    """Every weight the logits path packs, counted by fastops itself, equals the estimate's packs."""
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", "4096")
    ref = _mid(width=128)
    lm = load_model(ref, "cpu")
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    path = tap_path(lm, "logits")  # keeps the patch embedding's reshaped kernel (and its pack) alive
    run_paths(x, [path])[0].sum().backward()
    packs = fastops.pack_bytes(lm.module.parameters())
    assert packs > 0
    assert sizes.model_bytes(ref, fast=True) == pool.module_bytes(lm.module) + packs
    assert pool.held_bytes(lm) == pool.module_bytes(lm.module) + packs


def test_vit_h_14_is_sized_without_being_built():
    """2.5 GB of parameters counted in a process whose memory stays far below that."""
    # VmHWM: this process's own peak (ru_maxrss would include the pytest process it was spawned from)
    code = ("import json, pathlib; from vitrep.models import sizes; from vitrep.models.registry import make_ref; "
            "b = sizes.param_bytes(make_ref('vit_h_14')); "
            "hwm = [l for l in pathlib.Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM')]; "
            "print(json.dumps([b, int(hwm[0].split()[1]) * 1024]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    params, peak = json.loads(out.stdout.strip().splitlines()[-1])
    assert params == 632_045_800 * 4
    assert peak < 1.5e9  # import torch alone is ~0.65 GB with a CUDA build; a real ViT-H/14 adds 2.5 GB


def test_model_fits_says_why_not(monkeypatch):
    monkeypatch.setenv("VITREP_MEMORY_MB", "1800")
    ok, why = sizes.model_fits(make_ref("vit_h_14"))
    assert not ok
    assert why.startswith("ViT-H/14 needs about ") and why.endswith(" GB, more than this server's 1.8 GB memory budget.")
    assert float(why.split("about ")[1].split(" GB")[0]) >= 2.5  # 632 M float32 parameters, packs on top
    assert sizes.model_fits(make_ref("vit_b_32")) == (True, "")
    assert sizes.model_fits(make_ref("resnet50")) == (True, "")
    monkeypatch.setenv("VITREP_MEMORY_MB", "unlimited")
    assert sizes.model_fits(make_ref("vit_h_14")) == (True, "")


# --- the model cache keeps the budget -------------------------------------------------------------

@needs_packs
def test_a_new_model_evicts_the_least_recent_one_and_its_packs_before_it_is_built(monkeypatch, caplog, empty_cache):
    caplog.set_level(logging.INFO, logger="vitrep")
    monkeypatch.delenv("VITREP_FAST_BUDGET_MB", raising=False)
    monkeypatch.setenv("VITREP_MEMORY_MB", "60")  # one 37 MB model (13 MB weights + 24 MB packs), not two
    a = load_model(_mid(0), "cpu")
    before = _use(a)
    a_packs = fastops.pack_bytes(a.module.parameters())
    assert a_packs == 24 * 2 ** 20 and pool.held_bytes(a) == pool.module_bytes(a.module) + a_packs
    assert pool.cache_bytes() == sizes.model_bytes(a.ref) >= pool.held_bytes(a)  # the head's packs reserved too
    caplog.clear()
    b = load_model(_mid(1), "cpu")
    _use(b)
    assert not pool.is_cached(_mid(0), "cpu") and pool.is_cached(_mid(1), "cpu")
    assert fastops.pack_bytes(a.module.parameters()) == 0  # the evicted model's packs are given back
    assert pool.cache_bytes() <= 60 * 2 ** 20
    msgs = [r.getMessage() for r in caplog.records]
    assert [m.split()[0] for m in msgs if m.startswith(("evicted", "built"))] == ["evicted", "built"]  # room first
    # whoever still holds the evicted model computes on with it, unchanged
    torch.testing.assert_close(_use(a), before)
    assert load_model(_mid(1), "cpu") is b


def test_the_least_recently_used_model_goes_first(monkeypatch, empty_cache):
    """Unused models count with the packs they will make: three 40 MB reservations do not fit 100 MB."""
    monkeypatch.setenv("VITREP_MEMORY_MB", "100")
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", "100")
    refs = [_mid(s) for s in range(3)]
    a = load_model(refs[0], "cpu")
    load_model(refs[1], "cpu")
    assert load_model(refs[0], "cpu") is a  # a hit: refs[0] is now the most recent
    load_model(refs[2], "cpu")
    assert [pool.is_cached(r, "cpu") for r in refs] == [True, False, True]
    assert [lm.ref for lm, _ in pool.cached_models()] == [refs[0], refs[2]]


def test_a_model_alone_over_the_budget_is_refused_before_it_is_built(monkeypatch, caplog, empty_cache):
    caplog.set_level(logging.INFO, logger="vitrep")
    monkeypatch.setenv("VITREP_MEMORY_MB", "20")
    ref = _mid(5)
    with pytest.raises(MemoryBudgetError) as e:
        load_model(ref, "cpu")
    assert isinstance(e.value, VitrepError)
    msg = str(e.value)
    assert msg.startswith("vit_custom (patch 8, width 256, depth 4, heads 4, size 64) needs about ")
    assert msg.endswith("more than this server's 20 MB memory budget; set VITREP_MEMORY_MB higher (or to 'unlimited') to run it.")
    assert msg.count(".") == 1 and not pool.is_cached(ref, "cpu")
    assert not any(r.getMessage().startswith("built") for r in caplog.records)


def test_no_budget_keeps_every_model(monkeypatch, empty_cache):
    monkeypatch.setenv("VITREP_MEMORY_MB", "unlimited")
    loaded = [load_model(_mid(s, width=64), "cpu") for s in range(3)]
    assert all(pool.is_cached(_mid(s, width=64), "cpu") for s in range(3))
    assert all(load_model(_mid(s, width=64), "cpu") is lm for s, lm in enumerate(loaded))


# --- batches --------------------------------------------------------------------------------------

def test_split_rows_fits_what_the_models_leave(monkeypatch, empty_cache):
    mb = 2 ** 20
    monkeypatch.setenv("VITREP_MEMORY_MB", "100")
    rows = list(range(12))
    assert chunks.split_rows(rows, 30 * mb) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert chunks.split_rows(rows, 60 * mb) == [[r] for r in rows]  # two do not fit together: one row at a time
    assert chunks.split_rows([3, 4, 5], [60 * mb, 30 * mb, 30 * mb]) == [[3, 4], [5]]
    with pytest.raises(MemoryBudgetError, match=r"^One image of this batch needs about 200 MB, more than this "
                                                r"server's 100 MB memory budget; .*\.$"):
        chunks.split_rows(rows, 200 * mb)  # no chunk can hold it: refused before anything runs, not run alone
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", "100")
    ref = _mid(0)
    reserved = sizes.model_bytes(ref)  # not loaded yet: reserved; loaded: counted in the cache
    expect = (100 * mb - reserved) // (10 * mb)
    assert [len(c) for c in chunks.split_rows(rows, 10 * mb, model=ref)][0] == expect
    _use(load_model(ref, "cpu"))
    assert [len(c) for c in chunks.split_rows(rows, 10 * mb, model=ref)][0] == \
        (100 * mb - pool.cache_bytes()) // (10 * mb)
    monkeypatch.setenv("VITREP_MEMORY_MB", "unlimited")
    assert chunks.split_rows(rows, 10 ** 12) == [rows]
    assert chunks.split_rows([], 1) == []


def _saved_bytes(lm, tap: str) -> int:
    """What autograd really keeps for one row's backward on the CPU path, less the model's own weights."""
    held = {t.untyped_storage().data_ptr() for t in list(lm.module.parameters()) + list(lm.module.buffers())}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in held:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x = torch.rand(1, 3, lm.size, lm.size, requires_grad=True)
        run_paths(x, [tap_path(lm, tap)])[0].sum().backward()
    return sum(saved.values())


@pytest.mark.parametrize("name,arch,tap", [("vit_custom", dict(patch=8, width=128, depth=4, heads=4, size=64), "encoder-4"),
                                           ("resnet50", dict(size=64), "layer4"),
                                           ("mixer", dict(patch=16, width=64, depth=2, size=64), "block-2")])
def test_row_bytes_cover_what_a_real_row_keeps(name, arch, tap):
    ref = make_ref(name, **arch)
    est = sizes.row_bytes(ref, tap)
    real = _saved_bytes(load_model(ref, "cpu"), tap)
    assert real > 0
    assert real <= est <= 6 * real + 10 * 3 * 64 * 64 * 4  # saved tensors plus the documented transients


def test_row_bytes_grow_with_depth():
    vit, res = make_ref("vit_b_32"), make_ref("resnet50")
    assert sizes.row_bytes(vit, "encoder-1") < sizes.row_bytes(vit, "encoder-4") < sizes.row_bytes(vit, "encoder-12")
    assert sizes.row_bytes(res, "conv1") < sizes.row_bytes(res, "layer1") < sizes.row_bytes(res, "layer4")
    assert 10 * 2 ** 20 < sizes.row_bytes(vit, "encoder-12") < 60 * 2 ** 20


def test_release_frees_what_a_reference_cycle_holds(monkeypatch, empty_cache):
    """A batch's leftovers held by a reference cycle go before the next batch is planned (under a budget)."""
    import weakref

    def leftover():
        t = torch.zeros(1000)
        box = {"tensor": t}
        box["self"] = box  # a cycle: only the cyclic collector frees it
        return weakref.ref(t)

    monkeypatch.setenv("VITREP_MEMORY_MB", "100")
    import gc

    gc.disable()
    try:
        ref = leftover()
        assert ref() is not None
        chunks.split_rows([0, 1], 1)
        assert ref() is None
    finally:
        gc.enable()
