"""Findings out of the box: calibrated step sizes, the blow-up back-off, budgets and figures that judge their claims."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vitrep import calibration
from vitrep.figures import BUDGETS, FIGURES, Claim, Figure, Panel, run_figure
from vitrep.figures.catalogue import SECONDS_PER_BLOCK_STEP
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct

from .conftest import ROOT, run_cli


def test_every_family_has_calibrated_step_sizes():
    """The committed table covers every family, and a default config takes its numbers."""
    t = calibration.table()
    assert t["default_optimizer"] in ("adam", "gd")
    for family in ("vit", "resnet", "mixer", "ffvit"):
        rows = t["schedules"][family][t["default_optimizer"]]
        assert rows and all(r["lr_start"] > r["lr_end"] > 0 for r in rows)
        assert rows[-1]["depth"][1] >= 99  # the deepest band is open-ended
    cfg = make_config("vit_b_32", 12, steps=10)
    opt, lr0, lr1 = calibration.default_schedule(cfg.model, "encoder-12")
    assert (cfg.optimizer, cfg.lr_start, cfg.lr_end) == (opt, lr0, lr1)
    # a user's step size wins, and the end of the schedule keeps the calibrated shape
    mine = make_config("vit_b_32", 12, steps=10, lr_start=lr0 * 2)
    assert mine.lr_start == lr0 * 2 and mine.lr_end == pytest.approx(lr1 * 2)
    # the paper's plain step is still there, with its own calibrated sizes
    gd = make_config("vit_b_32", 12, steps=10, optimizer="gd")
    assert gd.optimizer == "gd" and (gd.lr_start, gd.lr_end) == calibration.default_schedule(gd.model, "encoder-12", "gd")[1:]


@pytest.mark.parametrize("tap, depth", [("stem", 0), ("embed", 0), ("encoder-1", 1), ("encoder-12", 12),
                                        ("only-encoder-7", 1), ("norm", 13), ("layer3", 3), ("layer3.2", 3),
                                        ("block-8", 8), ("conv1", 0)])
def test_tap_depth(tap, depth):
    assert calibration.tap_depth(tap, 12) == depth


def test_a_blow_up_backs_off_instead_of_returning_noise(tiny_ref, cat32):
    """Plain steps far too large for a norm-free ViT: with the guard the run backs off and ends finite, closer to
    the image than without it, and says so.  How far the unguarded run explodes depends on the CPU's kernels
    (AVX2 and AVX-512 differ by 10x), so no ratio of exploded values is asserted."""
    kw = dict(steps=60, optimizer="gd", lr_start=30.0, lr_end=30.0, remove="ln_1,ln_2")
    guarded = reconstruct(cat32, make_config(tiny_ref, "encoder-4", **kw))
    raw = reconstruct(cat32, make_config(tiny_ref, "encoder-4", backoff=False, **kw))
    print(f"\nPSNR with back-off {guarded.final['psnr']:.2f} ({guarded.backoffs} back-offs), "
          f"without {raw.final['psnr']:.2f}; m_g {guarded.final['embedding_distance']:.3g} vs "
          f"{raw.final['embedding_distance']:.3g}")
    assert guarded.backoffs >= 1 and guarded.status == "done"
    assert guarded.summary()["backoffs"] == guarded.backoffs  # said in the result
    assert raw.backoffs == 0
    assert all(math.isfinite(v) for v in guarded.final.values()), guarded.final
    # the unguarded run ends farther from the image in both spaces (or not at all: non-finite is farther)
    for key in ("input_distance", "embedding_distance"):
        assert not guarded.final[key] >= raw.final[key], (key, guarded.final[key], raw.final[key])
    # the loss never ends far above its best: the guard keeps the run near its best image
    assert guarded.curves["loss"][-1] < 10 * min(guarded.curves["loss"])


def test_the_blow_up_test_holds_on_avx2_kernels():
    """The same test with torch's and oneDNN's kernels held to AVX2 (the project's AVX2-only machines)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_findings.py::test_a_blow_up_backs_off_instead_of_returning_noise"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:]


def test_a_run_that_does_not_blow_up_is_untouched_by_the_guard(tiny_ref, cat32):
    kw = dict(steps=40, optimizer="gd", lr_start=1.0, lr_end=0.05)
    a = reconstruct(cat32, make_config(tiny_ref, 2, **kw))
    b = reconstruct(cat32, make_config(tiny_ref, 2, backoff=False, **kw))
    assert a.backoffs == 0 and a.curves == b.curves and np.array_equal(a.image, b.image)


def test_adam_rows_batch_like_single_runs(tiny_ref, cat32):
    from vitrep.reconstruction import reconstruct_many

    cfgs = [make_config(tiny_ref, k, steps=30, optimizer="adam", lr_start=0.1, lr_end=0.01) for k in (1, 3)]
    for cfg, b in zip(cfgs, reconstruct_many([cat32] * 2, cfgs)):
        s = reconstruct(cat32, cfg)
        assert b.final["embedding_distance"] == pytest.approx(s.final["embedding_distance"], rel=1e-4)


def _tiny_figure(judge, **kw):
    arch = (("patch", 8), ("width", 32), ("depth", 4), ("heads", 2), ("size", 32))
    panels = (Panel("enc 1", model="vit_custom", arch=arch, layer="1", steps=400),
              Panel("enc 4", model="vit_custom", arch=arch, layer="4", steps=400),
              Panel("enc 4 long", model="vit_custom", arch=arch, layer="4", steps=4000, demo=False))
    claim = Claim("encoder 4 keeps the image", "PSNR at encoder 4 above 10 dB", ("enc 4",), judge, **kw)
    return Figure("tiny", 99, "tiny", "a test figure", panels, demo_steps=60, own_claims=(claim,))


def test_budgets_and_verdicts_in_distances_json(tmp_path):
    def judge(rows):
        return rows["enc 4"]["final"]["psnr"] > 10, {"psnr_enc_4": rows["enc 4"]["final"]["psnr"]}

    fig = _tiny_figure(judge)
    assert [fig.steps_for(p, "demo") for p in fig.panels_for("demo")] == [60, 60]
    assert [p.label for p in fig.left_out("demo")] == ["enc 4 long"]
    assert [fig.steps_for(p, "quick") for p in fig.panels_for("quick")] == [2, 2, 8]
    assert [fig.steps_for(p, "full") for p in fig.panels_for("full")] == [400, 400, 4000]
    assert [fig.steps_for(p, "full", steps=7) for p in fig.panels_for("full")] == [7, 7, 7]
    per = SECONDS_PER_BLOCK_STEP["vit_custom"]
    assert fig.expected_seconds("demo") == pytest.approx(60 * per * (1 + 4))
    assert fig.expected_seconds("demo", optimizers=2) == pytest.approx(2 * 60 * per * (1 + 4))
    assert fig.expected_seconds("full") == pytest.approx(400 * per * (1 + 4) + 4000 * per * 4)
    summary = run_figure(fig, tmp_path, "demo", optimizer="both")
    doc = json.loads((tmp_path / "distances.json").read_text())
    assert doc["budget"] == "demo" and doc["left_out"] == ["enc 4 long"] and doc["optimizers"] == ["gd", "adam"]
    assert len(doc["panels"]) == 4 and {r["optimizer"] for r in doc["panels"]} == {"gd", "adam"}
    by = {v["optimizer"]: v for v in doc["verdicts"]}
    assert sorted(by) == ["adam", "gd"] and by["gd"]["method"] == "plain GD" and by["adam"]["method"] == "Adam"
    for v in by.values():
        assert v["quote"] == "encoder 4 keeps the image" and v["verdict"] == "HELD", v["line"]
        assert v["evidence"]["psnr_enc_4"] > 10 and v["line"].startswith(f"HELD ({v['method']}), figure 99 claim 1: ")
    assert summary["verdicts"] == doc["verdicts"]
    # the contact sheet carries the verdict lines under its title (bands of green text)
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("RGB"))
    band = sheet[34:80]
    assert ((band[..., 1] > 90) & (band[..., 0] < 60)).sum() > 50


def test_a_claim_that_fails_says_not_held(tmp_path):
    fig = _tiny_figure(lambda rows: (False, {"why": 1}))
    (v,) = run_figure(fig, tmp_path, "demo")["verdicts"]
    assert v["verdict"] == "NOT HELD" and v["optimizer"] == "gd"


def test_one_step_is_never_held(tmp_path):
    """With --steps 1 nothing moves: a claim whose judge would say yes is NOT CHECKED, not HELD."""
    fig = _tiny_figure(lambda rows: (True, {}))
    for optimizer in ("gd", "adam"):
        (v,) = run_figure(fig, tmp_path / optimizer, "demo", optimizer=optimizer, steps=1)["verdicts"]
        assert v["verdict"] == "NOT CHECKED" and v["reason"].startswith("panels did not move"), v["line"]
    (v,) = run_figure(fig, tmp_path / "q", "quick")["verdicts"]
    assert v["verdict"] == "NOT CHECKED"


def test_every_figure_but_3_states_claims():
    for f in FIGURES.values():
        assert bool(f.claims) == (f.figure != 3), f.name
        for budget in BUDGETS:
            assert f.panels_for(budget), (f.name, budget)


def test_preset_cli_budget_and_own_image(tmp_path):
    """--budget, --image on a file of the user's; figure 3 states no finding, so no verdict is printed."""
    mine = tmp_path / "mine.png"
    Image.fromarray((np.random.default_rng(1).random((90, 120, 3)) * 255).astype(np.uint8)).save(mine)
    p = run_cli("preset", "single-encoders", "--budget", "quick", "--image", mine, "--out", tmp_path / "o", "--quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "o" / "distances.json").read_text())
    assert doc["budget"] == "quick" and doc["images"] == {"cat": "mine"} and doc["optimizers"] == ["gd"]
    assert len(doc["panels"]) == 12 and all(r["image"] == "mine" for r in doc["panels"])  # the rocket's half is out
    assert doc["claims"] == 0 and doc["verdicts"] == []
    assert "states no finding for this figure" in p.stdout
    assert not re.search(r"^(HELD|NOT HELD|NOT CHECKED)", p.stdout, re.M)
    q = run_cli("preset", "single-encoders", "--quick", "--budget", "demo", "--out", tmp_path / "q")
    assert q.returncode == 2 and "Traceback" not in q.stderr


def test_preset_steps_1_prints_no_held_and_both_optimizers(tmp_path):
    """`preset 13 --steps 1 --optimizer both`: one verdict per optimizer, each naming it, none HELD."""
    p = subprocess.run([sys.executable, "-m", "vitrep", "preset", "13", "--steps", "1", "--optimizer", "both",
                        "--out", str(tmp_path), "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    verdicts = re.findall(r"^(HELD|NOT HELD|NOT CHECKED) \((plain GD|Adam)\)", p.stdout, re.M)
    assert verdicts == [("NOT CHECKED", "plain GD"), ("NOT CHECKED", "Adam")], p.stdout
    doc = json.loads((tmp_path / "distances.json").read_text())
    assert [v["optimizer"] for v in doc["verdicts"]] == ["gd", "adam"] and doc["steps"] == 1
    assert all(r["steps"] == 1 for r in doc["panels"])


def test_expected_times_come_from_this_machines_own_runs(tmp_path):
    """A figure run records each model's seconds per block and step beside the memo; the next estimate uses them."""
    from vitrep.figures.costs import measured
    from vitrep.running.memo import Memo

    fig = _tiny_figure(lambda rows: (True, {}))
    table = fig.expected_seconds("demo")
    memo = Memo(tmp_path / "memo")
    assert measured(memo.directory) == {}
    run_figure(fig, tmp_path / "o", "demo", memo=memo)
    costs = measured(memo.directory)
    assert set(costs) == {"vit_custom"} and costs["vit_custom"] > 0
    here = fig.expected_seconds("demo", costs=costs)
    assert here == pytest.approx(costs["vit_custom"] * 60 * (1 + 4)) and here != table
    run_figure(fig, tmp_path / "again", "demo", memo=memo)  # all memo hits: nothing computed, nothing recorded
    assert measured(memo.directory) == costs
