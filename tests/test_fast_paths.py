"""Every fast path of the engine reproduces the plain path: the page's own loop (vitrep.reference).

The engine differs from the page's loop in how it computes, never in what: a
frozen model (no parameter gradients), forward only to the tap, the patch
embedding as a matrix product, the blur as one depthwise convolution, and
several reconstructions as one batch.  Same seed, same steps: final distances
agree within 1e-4 relative on CPU float32.

Each fast path changes only float rounding (about 1e-7 per step).  The page's
L1 loss follows sign(t - O), which turns rounding-level differences into
slowly growing trajectory differences (about 1e-4 after 25 steps even between
two loops that agree bit for bit on the first five), so L1 runs are compared
over 10 steps; the smooth L2 loss keeps the runs together for 100 steps and
more.
"""

import pytest
import torch

from vitrep.models import build_model, make_ref
from vitrep.reconstruct import make_config, reconstruct, reconstruct_many
from vitrep.reference import NewResNet, NewVit, page_loop


def _engine_init(seed: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    torch.randn(3, size, size, generator=g)  # the engine draws the a' noise first
    return (torch.randn(3, size, size, generator=g) * 0.05 + 0.7).unsqueeze(0)


def _page_loop_l2(net, layer, image, init, steps, lr_start, lr_end, scale):
    """The page's loop with the L2 loss (same structure, trainable parameters, torchvision's blur)."""
    from torchvision.transforms.functional import gaussian_blur

    target, a = net(image, layer).detach(), init.clone()
    for i in range(steps):
        a = a.detach().requires_grad_(True)
        (scale * (target - net(a, layer)).square().sum()).backward()
        f = i / (steps - 1)
        sigma = 2.4 + (0.4 - 2.4) * f
        a = gaussian_blur(a.detach() - (lr_start + (lr_end - lr_start) * f) * a.grad, [3, 3], [sigma, sigma])
    return a.detach()


def _distances(net, layer, image, a):
    with torch.no_grad():
        t, o = net(image, layer), net(a, layer)
    return float((t - o).norm()), float((image - a).norm())


def _page_net(name):
    plain, _ = build_model(make_ref(name))  # trainable parameters, as the page left them
    plain.eval()
    return (NewVit if name.startswith("vit") else NewResNet)(plain)


@pytest.mark.parametrize("name, layer, tap", [("vit_b_32", 1, "encoder-1"), ("vit_b_32", 3, "encoder-3"),
                                              ("resnet50", 1, "layer1")])
def test_engine_matches_the_pages_loop(name, layer, tap, cat224):
    steps = 10
    ref = make_ref(name)
    net = _page_net(name)
    a = page_loop(net, layer, cat224, _engine_init(0, 224), steps)
    page_m, page_in = _distances(net, layer, cat224, a)
    r = reconstruct(cat224, make_config(ref, tap, steps=steps, pos_embed=False, report_every=steps))
    assert r.final["embedding_distance"] == pytest.approx(page_m, rel=1e-4)
    assert r.final["input_distance"] == pytest.approx(page_in, rel=1e-4)


@pytest.mark.parametrize("layer, steps", [(1, 100), (3, 40)])
def test_engine_matches_the_pages_loop_l2_long(layer, steps, cat224):
    net = _page_net("vit_b_32")
    a = _page_loop_l2(net, layer, cat224, _engine_init(0, 224), steps, 0.05, 0.01, 1.0)
    page_m, page_in = _distances(net, layer, cat224, a)
    r = reconstruct(cat224, make_config("vit_b_32", layer, steps=steps, loss="l2", loss_scale=1.0, lr_start=0.05,
                                        lr_end=0.01, pos_embed=False, report_every=steps))
    assert r.final["embedding_distance"] == pytest.approx(page_m, rel=1e-4)
    assert r.final["input_distance"] == pytest.approx(page_in, rel=1e-4)
    assert r.final["embedding_distance"] < 0.5 * r.curves["embedding_distance"][0]  # a real run, not a no-op


def test_layer_sweep_batch_matches_single_runs(cat224):
    ref = make_ref("vit_b_32")
    cfgs = [make_config(ref, f"encoder-{k}", steps=12, report_every=12) for k in (1, 2, 6, 12)]
    batched = reconstruct_many([cat224] * len(cfgs), cfgs)
    for cfg, b in zip(cfgs, batched):
        s = reconstruct(cat224, cfg)
        for key in ("embedding_distance", "input_distance", "psnr"):
            assert b.final[key] == pytest.approx(s.final[key], rel=1e-4)
