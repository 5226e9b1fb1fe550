"""Seed ensembles: many inputs, one output, on models whose answer is known."""

import numpy as np
import pytest

from vitrep.config import make_config
from vitrep.ensembles import UNDETERMINED, member_configs, run_ensemble, spread_of
from vitrep.errors import ConfigError
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.reconstruction import reconstruct

KW = dict(steps=300, optimizer="adam", lr_start=0.05, lr_end=0.005, blur_start=0.0, blur_end=0.0, loss="l2",
          loss_scale=1.0)


def _linear_stem(seed: int, blue: bool = True):
    """A ViT on 32x32 inputs whose stem (4x4 patches into 64 numbers: 48 in, overcomplete) is linear and, with
    all colours, invertible; without ``blue`` the blue channel is its null space."""
    ref = make_ref("vit_custom", patch=4, width=64, depth=1, heads=2, size=32, seed=seed)
    lm = load_model(ref, "cpu")
    if not blue:
        lm.module.conv_proj.weight.data[:, 2] = 0.0  # this model (seed) is the null-space test's alone
    return ref, lm


def test_one_seed_is_the_plain_reconstruction_bit_for_bit(tiny_ref, cat32):
    cfg = make_config(tiny_ref, 2, steps=30)
    ens = run_ensemble(cat32, cfg, seeds=1)
    plain = reconstruct(cat32, member_configs(cfg, 1)[0])
    assert np.array_equal(ens.members[0].image, plain.image) and ens.members[0].curves == plain.curves
    assert ens.pairwise_distance == 0.0 and float(ens.std.max()) == 0.0


def test_an_invertible_linear_tap_leaves_nothing_undetermined(cat32):
    ref, lm = _linear_stem(11)
    cfg = make_config(ref, "stem", **KW)
    ens = run_ensemble(cat32, cfg, seeds=4, lm=lm)
    start = spread_of([r.snapshots[0][1] for r in ens.members])[1]
    print(f"\nspread {ens.curves['spread'][0]:.4f} -> {ens.std.mean():.5f}; pairwise {ens.pairwise_distance:.4f}; "
          f"undetermined {ens.undetermined:.4f}; m_g {ens.mean_m_g:.3g} vs m_r {ens.mean_m_r:.3g}")
    assert start > 0.03  # the starts differ by their N(0, 1/20) noise
    assert ens.std.mean() < 0.1 * start and ens.undetermined < 0.01
    assert ens.curves["spread"][-1] < ens.curves["spread"][0] and len(ens.curves["step"]) >= 10


def test_a_null_space_is_where_the_ensemble_spreads(cat32):
    """The stem ignores blue: the members agree on red and green and keep their own blue."""
    ref, lm = _linear_stem(12, blue=False)
    cfg = make_config(ref, "stem", **KW)
    ens = run_ensemble(cat32, cfg, seeds=4, lm=lm)
    x = np.stack([r.image.astype(np.float64) / 255 for r in ens.members])
    per_channel = x.std(axis=0).mean(axis=(0, 1))  # red, green, blue
    print(f"\nspread per channel {per_channel.round(4)}; undetermined {ens.undetermined:.3f}")
    assert per_channel[2] > 5 * max(per_channel[0], per_channel[1])
    ens_full = run_ensemble(cat32, cfg, seeds=4, lm=_linear_stem(11)[1])
    assert ens.pairwise_distance > 3 * ens_full.pairwise_distance


def test_the_ensemble_is_remembered_member_by_member(tiny_ref, cat32, tmp_path):
    from vitrep.running.memo import Memo

    memo = Memo(tmp_path / "m")
    cfg = make_config(tiny_ref, 2, steps=20)
    a = run_ensemble(cat32, cfg, seeds=3, memo=memo)
    b = run_ensemble(cat32, cfg, seeds=3, memo=memo)
    assert all(r.from_cache for r in b.members) and b.pairwise_distance == a.pairwise_distance
    assert memo.computations >= 1 and len(memo) == 3
    doc = b.summary()
    assert doc["seeds"] == 3 and [m["seed"] for m in doc["members"]] == [0, 1, 2]
    assert b.curves_csv().splitlines()[0] == "step,spread,pairwise_distance,m_g"
    assert b.heat_map().shape == cat32.shape[2:] + (3,)


def test_a_bad_seed_count_is_one_sentence(tiny_ref):
    with pytest.raises(ConfigError, match="1 to 64 seeds"):
        member_configs(make_config(tiny_ref, 2, steps=5), 0)


def test_undetermined_is_the_baselines_sigma():
    assert UNDETERMINED == pytest.approx(1 / 18)


def test_the_cli_writes_the_ensemble_and_says_it_in_words(tmp_path):
    import json

    from .conftest import run_cli

    p = run_cli("ensemble", "--image", "cat", "--model", "vit_custom", "--patch", "8", "--width", "32", "--depth",
                "4", "--heads", "2", "--size", "32", "--layer", "2", "--seeds", "3", "--steps", "20", "--out",
                tmp_path / "e", "--quiet", "--cache-dir", tmp_path / "memo")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("3 reconstructions from 3 starts end ") and "undetermined" in p.stdout
    doc = json.loads((tmp_path / "e" / "ensemble.json").read_text())
    assert doc["seeds"] == 3 and 0 <= doc["undetermined_share"] <= 1
    for f in ("target.png", "mean.png", "spread.png", "members.png", "curves.csv"):
        assert (tmp_path / "e" / f).stat().st_size > 0
    bad = run_cli("ensemble", "--image", "cat", "--model", "vit_custom", "--seeds", "0", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "1 to 64 seeds" in bad.stderr and "Traceback" not in bad.stderr
