"""Class input generation on a stand-in checkpoint, and the method's stages one by one."""

import pytest
import torch

from vitrep.running.memo import Memo
from vitrep.errors import ConfigError
from vitrep.generate import GenerateConfig, blur_sigma, generate, make_generate_config, resolve_class, run_generate, search_classes
from vitrep.descent.param import crop_step, enlarge
from vitrep.models.weights import build_model
from vitrep.models.registry import make_ref


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A small checkpoint we make (another seed, random head) for the fast mechanics tests."""
    ref = make_ref("vit_custom", seed=11, patch=8, width=32, depth=2, heads=2, size=32)
    m, _ = build_model(ref)
    torch.manual_seed(0)
    torch.nn.init.normal_(m.heads.head.weight, std=0.5)
    f = tmp_path_factory.mktemp("ckpt") / "standin.pt"
    torch.save(m.state_dict(), f)
    return make_ref("vit_custom", weights=str(f), patch=8, width=32, depth=2, heads=2, size=32)


def test_chosen_logit_rises_far_above_the_others(vitb32_standin):
    ref = make_ref("vit_b_32", weights=str(vitb32_standin))
    cfg = make_generate_config(ref, "dalmatian", steps=40, jitter=0, report_every=10)
    g = generate(cfg)
    t, o = g.curves["target_logit"], g.curves["best_other_logit"]
    print(f"\ndalmatian logit {t[0]:.2f} -> {t[-1]:.2f}; best other {o[0]:.2f} -> {o[-1]:.2f}")
    assert t[-1] > t[0] + 3.0
    assert t[-1] > 3 * abs(o[-1]) and t[-1] - o[-1] > 3.0
    assert g.top5[0][0] == cfg.class_index == 251 and g.top5[0][1] == "dalmatian"


def test_blur_schedule_two_phases():
    c = GenerateConfig(model=make_ref("vit_custom"), class_index=1, steps=400, jitter_start=200)
    assert blur_sigma(c, 0) == pytest.approx(2.4)
    assert blur_sigma(c, 199) == pytest.approx(0.8)
    assert blur_sigma(c, 200) == pytest.approx(1.5)
    assert blur_sigma(c, 399) == pytest.approx(0.4)


def test_jitter_updates_only_the_crop():
    a = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    out = crop_step(a, (5, 7), 32, lambda x: x + 1.0)
    assert torch.equal(out[:, :, 5:37, 7:39], a[:, :, 5:37, 7:39] + 1.0)
    mask = torch.ones_like(a, dtype=torch.bool)
    mask[:, :, 5:37, 7:39] = False
    assert torch.equal(out[mask], a[mask])
    assert enlarge(a[:, :, :32, :32], 40).shape == (1, 3, 40, 40)


def test_jitter_phase_runs_on_the_enlarged_canvas(standin):
    g = generate(make_generate_config(standin, 3, steps=12, jitter_start=6, jitter=8, report_every=3))
    assert g.image.shape == (40, 40, 3) and g.steps == 12
    assert [s for s, _ in g.stages] == [0, 3, 6, 9, 12]
    assert g.stages[1][1].shape == (32, 32, 3) and g.stages[-1][1].shape == (40, 40, 3)


def test_class_search():
    assert (281, "tabby") in search_classes("tabby")
    assert resolve_class("Dalmatian") == 251 and resolve_class(0) == 0
    with pytest.raises(ConfigError, match="No ImageNet class matches"):
        resolve_class("spaceship-unicorn")


def test_generation_is_memoised(standin, tmp_path):
    memo = Memo(tmp_path / "m")
    cfg = make_generate_config(standin, "tabby", steps=6, jitter_start=3, jitter=4, report_every=2)
    a = run_generate(cfg, memo)
    b = run_generate(cfg, memo)
    assert not a.from_cache and b.from_cache and b.curves == a.curves and b.top5 == a.top5
