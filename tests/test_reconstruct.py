"""The reconstruction loop: it converges, it is repeatable, it leaves the model alone, it stops and it diverges cleanly."""

import threading

import numpy as np
import pytest
import torch

from vitrep.running.memo import Memo
from vitrep.errors import ConfigError
from vitrep.models.pool import load_model
from vitrep.config import ReconstructConfig, make_config
from vitrep.result import Result
from vitrep.descent.steps import blur
from vitrep.reconstruction import reconstruct, reconstruct_many
from vitrep.running.runs import cache_key, run, run_batch
from dataclasses import replace as with_changes


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_distance_falls_and_beats_start(tiny_ref, cat32):
    r = reconstruct(cat32, make_config(tiny_ref, 1, steps=80, report_every=10))
    m = r.curves["embedding_distance"]
    assert r.status == "done" and r.steps == 80
    assert m[-1] < 0.5 * m[0]
    assert r.curves["input_distance"][-1] < r.curves["input_distance"][0]
    assert r.curves["step"] == list(range(0, 81, 10))
    assert r.final["embedding_distance"] == m[-1]
    assert r.baseline["embedding_distance"] > 0 and 3.0 < r.baseline["input_distance"] < 7.0  # 3*32*32 px of N(0,1/18)


def test_model_untouched_no_grads_no_hooks(tiny_ref, cat32):
    lm = load_model(tiny_ref, "cpu")
    before = _state(lm.module)
    reconstruct(cat32, make_config(tiny_ref, 3, steps=5, remove="attention", blocks="2"))
    after = lm.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None and not p.requires_grad for p in lm.module.parameters())
    for mod in lm.module.modules():
        assert not mod._forward_hooks and not mod._forward_pre_hooks and not mod._backward_hooks
    assert not lm.module.training


def test_same_seed_same_result_other_seed_differs(tiny_ref, cat32):
    cfg = make_config(tiny_ref, 2, steps=30)
    a, b = reconstruct(cat32, cfg), reconstruct(cat32, cfg)
    assert a.curves == b.curves and np.array_equal(a.image, b.image)
    c = reconstruct(cat32, with_changes(cfg, seed=1))
    assert c.curves["embedding_distance"] != a.curves["embedding_distance"]


def test_too_large_lr_reports_divergence(tiny_ref, cat32):
    r = reconstruct(cat32, make_config(tiny_ref, 2, steps=50, lr_start=1e38, lr_end=1e38, blur_start=0, blur_end=0))
    assert r.status.startswith("diverged at step ")
    k = int(r.status.rsplit(" ", 1)[1])
    assert 0 < k < 50 and r.steps == k
    assert r.image.dtype == np.uint8 and np.isfinite(r.final["embedding_distance"])


def test_callback_sees_progress_and_can_stop(tiny_ref, cat32):
    seen = []

    def cb(p):
        seen.append((p.step, p.rows[0]["embedding_distance"], p.images[0].shape))
        return p.step >= 20

    r = reconstruct(cat32, make_config(tiny_ref, 1, steps=100, report_every=10), progress=cb)
    assert r.status == "stopped" and r.steps == 20
    assert [s for s, _, _ in seen] == [0, 10, 20] and seen[0][2] == (32, 32, 3)
    assert r.curves["step"][-1] == 20


def test_batch_equals_single_runs(tiny_ref, cat32):
    cfgs = [make_config(tiny_ref, 1, steps=40), make_config(tiny_ref, 3, steps=40, seed=2),
            make_config(tiny_ref, "only-encoder-2", steps=40, remove="mlp")]
    batched = reconstruct_many([cat32] * 3, cfgs)
    for cfg, b in zip(cfgs, batched):
        s = reconstruct(cat32, cfg)
        for key in ("embedding_distance", "input_distance"):
            assert b.final[key] == pytest.approx(s.final[key], rel=1e-4)


def test_batch_rejects_mixed_schedules(tiny_ref, cat32):
    with pytest.raises(ConfigError, match="must share steps"):
        reconstruct_many([cat32] * 2, [make_config(tiny_ref, 1, steps=5), make_config(tiny_ref, 1, steps=6)])


def test_wrong_image_size_is_a_sentence(tiny_ref, cat224):
    with pytest.raises(ConfigError, match="takes 32x32 images, not 224x224"):
        reconstruct(cat224, make_config(tiny_ref, 1, steps=2))


def test_bad_config_values(tiny_ref):
    with pytest.raises(ConfigError, match="Steps must be at least 1"):
        make_config(tiny_ref, 1, steps=0)
    with pytest.raises(ConfigError, match="Loss 'l3'"):
        make_config(tiny_ref, 1, loss="l3")
    with pytest.raises(ConfigError, match="lr start must be a finite number"):
        make_config(tiny_ref, 1, lr_start=float("nan"))


def test_blur_is_torchvision_gaussian():
    from torchvision.transforms.functional import gaussian_blur

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for sigma in (2.4, 1.0, 0.4):
        torch.testing.assert_close(blur(x, sigma), gaussian_blur(x, [3, 3], [sigma, sigma]), rtol=0, atol=1e-6)
        # a batch is blurred bit for bit as its rows alone (batched runs equal single runs)
        assert torch.equal(blur(x, sigma), torch.cat([blur(x[i:i + 1], sigma) for i in range(2)]))
        # a CUDA graph passes sigma as a tensor from its schedule: the same blur
        torch.testing.assert_close(blur(x, torch.tensor([sigma])), blur(x, sigma), rtol=0, atol=1e-7)
    assert torch.equal(blur(x, 0.0), x)
    torch.testing.assert_close(blur(x, torch.tensor([0.0])), x, rtol=0, atol=0)


def test_l2_loss_and_clamp(tiny_ref, cat32):
    r = reconstruct(cat32, make_config(tiny_ref, 1, steps=40, loss="l2", lr_start=0.05, lr_end=0.01, loss_scale=1.0,
                                       clamp=True, optimizer="gd"))
    m = r.curves["embedding_distance"]
    assert m[-1] < m[0]


@pytest.mark.parametrize("clamp", [True, False])
def test_clamp_keeps_every_pixel_in_range(tiny_ref, cat32, clamp):
    """PSNR is measured on the image clamped to [0, 1], the input distance on the image itself: they agree
    exactly when (and only when) every pixel already lies in [0, 1]. Large steps push pixels out."""
    n = cat32.numel()
    r = reconstruct(cat32, make_config(tiny_ref, 1, steps=20, optimizer="adam", lr_start=0.5, lr_end=0.5,
                                       clamp=clamp, report_every=5, backoff=False))
    from_distance = [10 * np.log10(n / d ** 2) for d in r.curves["input_distance"][1:]]
    agree = np.allclose(r.curves["psnr"][1:], from_distance, rtol=0, atol=1e-3)
    assert agree is clamp


def test_config_json_round_trip(tiny_ref):
    cfg = make_config(tiny_ref, "only-encoder-2", steps=7, remove="attention,ln_2", blocks="1-2", pos_embed=False)
    assert ReconstructConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown field"):
        ReconstructConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_memo_hit_identical_and_corrupt_entry_recomputed(tiny_ref, cat32, tmp_path):
    memo = Memo(tmp_path / "m")
    cfg = make_config(tiny_ref, 1, steps=20)
    first = run(cat32, cfg, memo)
    again = run(cat32, cfg, memo)
    assert not first.from_cache and again.from_cache and memo.computations == 1
    assert again.curves == first.curves and again.final == first.final and np.array_equal(again.image, first.image)
    key = cache_key(cat32, cfg)
    memo._cache.set(key, b"this is not an npz archive")
    third = run(cat32, cfg, memo)
    assert not third.from_cache and memo.computations == 2 and third.final == first.final
    assert run(cat32, cfg, memo).from_cache


def test_memo_keys_separate_what_differs(tiny_ref, cat32, cat224):
    cfg = make_config(tiny_ref, 1, steps=20)
    keys = {cache_key(cat32, cfg), cache_key(cat32, with_changes(cfg, seed=1)),
            cache_key(cat32, with_changes(cfg, steps=21)), cache_key(cat32 * 0.5, cfg),
            cache_key(cat32, make_config(tiny_ref, 1, steps=20, remove="mlp")),
            cache_key(cat32, with_changes(cfg, model=with_changes(cfg.model, seed=3)))}
    assert len(keys) == 6
    assert cache_key(cat32, cfg) == cache_key(cat32.clone(), make_config(tiny_ref, "encoder 1", steps=20))


def test_stopped_runs_are_not_remembered(tiny_ref, cat32, tmp_path):
    memo = Memo(tmp_path / "m")
    cfg = make_config(tiny_ref, 1, steps=50)
    assert run(cat32, cfg, memo, progress=lambda p: p.step >= 10).status == "stopped"
    assert run(cat32, cfg, memo).status == "done" and memo.computations == 2


def test_concurrent_identical_requests_compute_once(tiny_ref, cat32, tmp_path):
    memo = Memo(tmp_path / "m")
    cfg = make_config(tiny_ref, 2, steps=60)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(cat32, cfg, memo))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert memo.computations == 1 and len(results) == 3
    assert all(r.final == results[0].final for r in results)


def test_concurrent_identical_sweeps_compute_once(tiny_ref, cat32, tmp_path):
    """A class clicking the same preset at once: one sweep computed, every session served from it."""
    memo = Memo(tmp_path / "m")
    cfgs = [make_config(tiny_ref, k, steps=40) for k in (1, 2, 3, 4)]
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_batch([cat32] * 4, cfgs, memo))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert memo.computations == 4 and len(results) == 3
    assert sum(r.from_cache for rs in results for r in rs) == 8  # two of the three read all four rows
    assert all([r.final for r in rs] == [r.final for r in results[0]] for rs in results)


def test_result_bytes_round_trip(tiny_ref, cat32):
    r = reconstruct(cat32, make_config(tiny_ref, 1, steps=12, report_every=3))
    back = Result.from_bytes(r.to_bytes())
    assert back.config == r.config and back.curves == r.curves and back.final == r.final
    assert [s for s, _ in back.snapshots] == [s for s, _ in r.snapshots]
    assert back.success == r.success and back.from_cache
