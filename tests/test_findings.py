"""Findings out of the box: calibrated step sizes, the blow-up back-off, budgets and self-checking figures."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vitrep import calibration
from vitrep.presets import (BUDGETS, PRESETS, SECONDS_PER_BLOCK_STEP, Finding, Panel, Preset, finding_line,
                            run_preset)
from vitrep.reconstruct import make_config, reconstruct

from .conftest import ROOT


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
    # the page's plain step is still there, with its own calibrated sizes
    gd = make_config("vit_b_32", 12, steps=10, optimizer="gd")
    assert gd.optimizer == "gd" and (gd.lr_start, gd.lr_end) == calibration.default_schedule(gd.model, "encoder-12", "gd")[1:]


@pytest.mark.parametrize("tap, depth", [("stem", 0), ("embed", 0), ("encoder-1", 1), ("encoder-12", 12),
                                        ("only-encoder-7", 1), ("norm", 13), ("layer3", 3), ("layer3.2", 3),
                                        ("block-8", 8), ("conv1", 0)])
def test_tap_depth(tap, depth):
    assert calibration.tap_depth(tap, 12) == depth


def test_a_blow_up_backs_off_instead_of_returning_noise(tiny_ref, cat32):
    """Plain steps far too large for a norm-free ViT: without the guard the image explodes; with it, it backs off."""
    kw = dict(steps=60, optimizer="gd", lr_start=30.0, lr_end=30.0, remove="ln_1,ln_2")
    guarded = reconstruct(cat32, make_config(tiny_ref, "encoder-4", **kw))
    raw = reconstruct(cat32, make_config(tiny_ref, "encoder-4", backoff=False, **kw))
    print(f"\nPSNR with back-off {guarded.final['psnr']:.2f} ({guarded.backoffs} back-offs), "
          f"without {raw.final['psnr']:.2f}; m_g {guarded.final['embedding_distance']:.3g} vs "
          f"{raw.final['embedding_distance']:.3g}")
    assert guarded.backoffs >= 1 and guarded.status == "done"
    assert guarded.summary()["backoffs"] == guarded.backoffs  # said in the result
    assert raw.backoffs == 0
    assert guarded.final["embedding_distance"] < raw.final["embedding_distance"] / 100  # raw exploded
    assert guarded.final["psnr"] > raw.final["psnr"] + 2
    # the loss never ends far above its best: the guard keeps the run near its best image
    assert guarded.curves["loss"][-1] < 10 * min(guarded.curves["loss"])


def test_a_run_that_does_not_blow_up_is_untouched_by_the_guard(tiny_ref, cat32):
    kw = dict(steps=40, optimizer="gd", lr_start=1.0, lr_end=0.05)
    a = reconstruct(cat32, make_config(tiny_ref, 2, **kw))
    b = reconstruct(cat32, make_config(tiny_ref, 2, backoff=False, **kw))
    assert a.backoffs == 0 and a.curves == b.curves and np.array_equal(a.image, b.image)


def test_adam_rows_batch_like_single_runs(tiny_ref, cat32):
    from vitrep.reconstruct import reconstruct_many

    cfgs = [make_config(tiny_ref, k, steps=30, optimizer="adam", lr_start=0.1, lr_end=0.01) for k in (1, 3)]
    for cfg, b in zip(cfgs, reconstruct_many([cat32] * 2, cfgs)):
        s = reconstruct(cat32, cfg)
        assert b.final["embedding_distance"] == pytest.approx(s.final["embedding_distance"], rel=1e-4)


def _tiny_preset(check):
    arch = (("patch", 8), ("width", 32), ("depth", 4), ("heads", 2), ("size", 32))
    panels = (Panel("enc 1", model="vit_custom", arch=arch, layer="1", steps=400),
              Panel("enc 4", model="vit_custom", arch=arch, layer="4", steps=400),
              Panel("enc 4 long", model="vit_custom", arch=arch, layer="4", steps=4000, demo=False))
    return Preset("tiny", 99, "tiny", "a test preset", panels, finding=Finding("encoder 4 keeps the image", check),
                  demo_steps=30)


def test_budgets_and_a_finding_in_distances_json(tmp_path):
    def check(rows):
        ps = {p.label: r["final"]["psnr"] for p, r in rows}
        return ps["enc 4"] > 10, {"psnr_enc_4": round(ps["enc 4"], 2)}

    preset = _tiny_preset(check)
    assert [preset.steps_for(p, "demo") for p in preset.panels_for("demo")] == [30, 30]
    assert [p.label for p in preset.left_out("demo")] == ["enc 4 long"]
    assert [preset.steps_for(p, "quick") for p in preset.panels_for("quick")] == [2, 2, 8]
    assert [preset.steps_for(p, "full") for p in preset.panels_for("full")] == [400, 400, 4000]
    per = SECONDS_PER_BLOCK_STEP["vit_custom"]
    assert preset.expected_seconds("demo") == pytest.approx(30 * per * (1 + 4))
    assert preset.expected_seconds("full") == pytest.approx(400 * per * (1 + 4) + 4000 * per * 4)
    summary = run_preset(preset, tmp_path, "demo")
    doc = json.loads((tmp_path / "distances.json").read_text())
    assert doc["budget"] == "demo" and doc["left_out"] == ["enc 4 long"] and len(doc["panels"]) == 2
    f = doc["finding"]
    assert f["claim"] == "encoder 4 keeps the image" and f["held"] is True and f["evidence"]["psnr_enc_4"] > 10
    assert summary["finding"] == f
    assert finding_line(f).startswith("HELD: encoder 4 keeps the image [psnr_enc_4 ")
    # the contact sheet carries the finding line under its title (a band of green text)
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("RGB"))
    band = sheet[34:60]
    assert ((band[..., 1] > 90) & (band[..., 0] < 60)).sum() > 50


def test_a_finding_that_fails_says_not_held(tmp_path):
    preset = _tiny_preset(lambda rows: (False, {"why": 1}))
    assert run_preset(preset, tmp_path, "quick")["finding"]["held"] is False


def test_every_figure_states_a_finding():
    for p in PRESETS.values():
        assert p.finding is not None and p.finding.claim.endswith("."), p.name
        for budget in BUDGETS:
            assert p.panels_for(budget), (p.name, budget)


def test_preset_cli_budget_and_own_image(tmp_path):
    """--budget, --image on a file of the user's, and the finding printed and written."""
    mine = tmp_path / "mine.png"
    Image.fromarray((np.random.default_rng(1).random((90, 120, 3)) * 255).astype(np.uint8)).save(mine)
    p = subprocess.run([sys.executable, "-m", "vitrep", "preset", "single-encoders", "--budget", "quick",
                        "--image", str(mine), "--out", str(tmp_path / "o"), "--quiet"],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "o" / "distances.json").read_text())
    assert doc["budget"] == "quick" and doc["images"] == {"cat": "mine"}
    assert len(doc["panels"]) == 12 and all(r["image"] == "mine" for r in doc["panels"])  # the rocket's half is out
    assert doc["finding"]["claim"] and doc["finding"]["held"] in (True, False)
    assert "finding " in p.stdout and ("HELD" in p.stdout)
    q = subprocess.run([sys.executable, "-m", "vitrep", "preset", "single-encoders", "--quick", "--budget", "demo",
                        "--out", str(tmp_path / "q")], cwd=ROOT, capture_output=True, text=True)
    assert q.returncode == 2 and "Traceback" not in q.stderr
