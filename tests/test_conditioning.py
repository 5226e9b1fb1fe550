"""The Jacobian spectrum of a tap, against Jacobians whose singular values are known exactly."""

import json

import pytest
import torch

from vitrep.conditioning import Operator, condition_many, make_condition_config, run_condition, spectrum_of
from vitrep.running.memo import Memo
from vitrep.config import make_config
from vitrep.models.pool import load_model

from .conftest import run_cli


def _rel(a, b):
    return abs(a - b) / abs(b)


def test_a_random_linear_map_top_and_bottom():
    """J = A: Lanczos's top values match svdvals within 1%; with every iteration the bottom is exact."""
    A = torch.randn(90, 60, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float()
    sv = torch.linalg.svdvals(A.double())
    op = Operator(lambda v: v @ A.T, lambda u: u @ A, n=60, m=90, rows=1)
    cfg = make_condition_config(make_config("vit_custom", 1, steps=1), k=6, iterations=30)
    r = spectrum_of(op, cfg)[0]
    for est, err, true in zip(r["sigma_top"], r["top_error"], sv[:6].tolist()):
        assert _rel(est, true) < 0.01 and abs(est - true) <= err + 1e-5 * true
    # bottom after 30 of 60 steps: Ritz values never fall below the smallest singular values
    assert all(b >= t * (1 - 1e-6) for b, t in zip(r["sigma_bottom"], sv.flip(0)[:6].tolist()))
    full = spectrum_of(op, make_condition_config(make_config("vit_custom", 1, steps=1), k=6, iterations=60))[0]
    for est, err, true in zip(full["sigma_bottom"], full["bottom_error"], sv.flip(0)[:6].tolist()):
        assert abs(est - true) <= err + 1e-4 * true, (est, true, err)


@pytest.mark.parametrize("patch, width", [(16, 96), (8, 160)])
def test_a_one_patch_vit_stem_is_its_reshaped_kernel(patch, width):
    """A ViT's stem is linear; with one patch its Jacobian is the reshaped conv kernel itself."""
    from vitrep.images import prepare, sample_path

    recon = make_config("vit_custom", "stem", patch=patch, width=width, depth=1, heads=4, size=patch, steps=1)
    img = prepare(sample_path("cat"), patch)
    (s,) = condition_many(img, [make_condition_config(recon, k=6, iterations=80)])
    w = load_model(recon.model, "cpu").module.conv_proj.weight.reshape(width, -1)
    sv = torch.linalg.svdvals(w.double()).tolist()
    for est, err, true in zip(s.sigma_top, s.top_error, sv[:6]):
        assert _rel(est, true) < 0.01 and abs(est - true) <= err + 1e-4 * true, (est, true, err)
    assert s.converged()[0] == 6


def test_the_vit_b32_patch_embedding_is_its_reshaped_kernel(cat224):
    """ViT-B/32's stem: J is the 768 x 3072 kernel once per patch, so its singular values are the kernel's,
    each 49 times; Ritz values are lower bounds on them, and the largest converges first."""
    cfg = make_condition_config(make_config("vit_b_32", "stem", steps=1), k=4, iterations=40)
    (s,) = condition_many(cat224, [cfg])
    w = load_model(cfg.recon.model, "cpu").module.conv_proj.weight.reshape(768, -1)
    sv = torch.linalg.svdvals(w.double()).tolist()
    print("\nLanczos:", [round(x, 5) for x in s.sigma_top], "\nsvdvals:", [round(x, 5) for x in sv[:4]])
    assert _rel(s.sigma_top[0], sv[0]) < 1e-3
    assert all(_rel(est, true) < 0.01 for est, true in zip(s.sigma_top, sv))
    assert all(sv[-1] * (1 - 1e-4) <= x <= sv[0] * (1 + 1e-5) for x in s.sigma_top + s.sigma_bottom)
    assert (s.output_dim, s.input_dim) == (49 * 768, 3 * 224 * 224) and s.null_dim_min == 3 * 224 * 224 - 49 * 768
    assert s.condition_estimate <= sv[0] / sv[-1] * (1 + 1e-4)  # a lower bound on the condition number


def test_a_tiny_model_against_its_explicit_jacobian(cat32):
    """A 2-encoder ViT at 16 px (J is 80 x 768): top and bottom within the stated errors of the explicit SVD."""
    from vitrep.images import prepare, sample_path
    from vitrep.models.registry import make_ref

    ref = make_ref("vit_custom", patch=8, width=16, depth=2, heads=2, size=16)
    cat32 = prepare(sample_path("cat"), 16)
    recon = make_config(ref, "encoder-2", steps=1)
    lm = load_model(ref, "cpu")
    from vitrep.conditioning import forward_mode_friendly
    from vitrep.models.taps import run_paths, tap_path

    path = tap_path(lm, recon.tap, recon.surgery, recon.pos_embed, recon.normalize, fast=False)
    with forward_mode_friendly():
        J = torch.autograd.functional.jacobian(lambda x: run_paths(x, [path])[0].reshape(-1), cat32)
    J = J.reshape(J.shape[0], -1).double()
    sv = torch.linalg.svdvals(J)
    m = J.shape[0]
    true = sv.tolist()

    def near_some(est, err):  # the stated guarantee: some singular value lies within the error
        return min(abs(est - t) for t in true) <= err + 1e-6

    few = condition_many(cat32, [make_condition_config(recon, k=5, iterations=30)])[0]
    for est, err, t in zip(few.sigma_top, few.top_error, true[:5]):
        assert near_some(est, err) and est <= t * (1 + 1e-4) and _rel(est, t) < 0.01, (est, t, err)
    for est, err, t in zip(few.sigma_bottom, few.bottom_error, true[::-1][:5]):
        assert near_some(est, err) and est >= t * (1 - 1e-4)  # upper bounds on the smallest, as said
    full = condition_many(cat32, [make_condition_config(recon, k=5, iterations=m)])[0]
    for est, err in zip(full.sigma_bottom, full.bottom_error):
        assert near_some(est, err), (est, err)
    assert abs(full.sigma_bottom[0] - true[-1]) <= full.bottom_error[0]  # the smallest, found
    fro = float((J ** 2).sum())
    assert abs(full.frobenius_sq - fro) <= 4 * full.frobenius_sq_se + 1e-6 * fro  # Hutchinson within its error


def test_a_batch_of_removals_equals_each_alone_and_the_memo_remembers(tiny_ref, cat32, tmp_path, monkeypatch):
    import vitrep.conditioning.runner as cond  # run_condition looks condition_many up there

    calls = []
    real = cond.condition_many
    monkeypatch.setattr(cond, "condition_many", lambda img, cfgs, *a, **k: calls.append(len(cfgs)) or real(img, cfgs, *a, **k))
    base = make_config(tiny_ref, "encoder-2", steps=1)
    cfgs = [make_condition_config(make_config(tiny_ref, "encoder-2", remove=r, steps=1), k=4, iterations=20)
            for r in ("", "attention", "ln_1,ln_2")]
    memo = Memo(tmp_path / "memo")
    batch = run_condition(cat32, cfgs, memo)
    assert calls == [3] and memo.computations == 3  # three rows, one batch
    for c, b in zip(cfgs, batch):
        (alone,) = real(cat32, [c])
        for x, y in zip(b.sigma_top, alone.sigma_top):
            assert _rel(x, y) < 1e-4
    again = run_condition(cat32, cfgs, memo)
    assert all(s.from_cache for s in again) and memo.computations == 3 and calls == [3]
    assert [s.sigma_top for s in again] == [s.sigma_top for s in batch]
    assert base.tap == "encoder-2"


def test_k_larger_than_the_jacobian_is_one_sentence(tiny_ref, cat32):
    from vitrep.errors import ConfigError

    with pytest.raises(ConfigError, match="more singular values than this Jacobian has"):
        condition_many(cat32, [make_condition_config(make_config(tiny_ref, "stem", steps=1), k=10_000)])


def test_condition_cli_compare_writes_json_table_and_plot(tmp_path):
    p = run_cli("condition", "--image", "cat", "--model", "vit_custom", "--layer", "2", "--compare",
                "none;attention;ln_1,ln_2;mlp", "--k", "4", "--iterations", "12", "--out", tmp_path, "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "condition.json").read_text())
    assert [r["removed"] for r in doc["rows"]] == ["none", "attention", "ln_1,ln_2", "mlp"]
    for r in doc["rows"]:
        assert len(r["sigma_top"]) == 4 and len(r["top_residual"]) == 4 and r["condition_estimate"] >= 1
        assert r["sigma_bottom_is"].startswith("upper bounds") and r["config"]["recon"]["tap"] == "encoder-2"
    assert (tmp_path / "spectrum.png").stat().st_size > 10_000 and (tmp_path / "compare.csv").is_file()
    assert "kappa >=" in p.stdout


@pytest.mark.parametrize("args, words", [
    (["--layer", "99"], "does not exist"),
    (["--layer", "2", "--k", "100000"], "more singular values than this Jacobian has"),
    (["--layer", "2", "--remove", "wings"], "not a removable component"),
])
def test_condition_cli_bad_input_is_one_sentence(args, words, tmp_path):
    p = run_cli("condition", "--image", "cat", "--model", "vit_custom", *args, "--out", str(tmp_path), "--quiet")
    assert p.returncode == 2 and "Traceback" not in p.stderr and words in p.stderr, p.stderr


def test_condition_cli_model_over_the_memory_budget(tmp_path):
    import os

    p = run_cli("condition", "--image", "cat", "--model", "vit_h_14", "--layer", "1", "--out", tmp_path, "--quiet",
                env=dict(os.environ, VITREP_MEMORY_MB="500"))
    assert p.returncode == 2 and "Traceback" not in p.stderr and "budget" in p.stderr, p.stderr
