"""The ResNet-50 fast path (vitrep.fast.resnet) against the plain path, by the fast-path bar.

The fast path folds batch norm into packed oneDNN convolutions and runs
channels-last; it changes float rounding only.  An untrained ResNet's ReLU
and max-pool kinks make a trajectory sensitive to rounding (the old 1e-4 bar
on final distances after 10 L1 steps is missed at 3.5e-4), so the bar is:

(a) one step's input gradient within 1e-5 relative of the plain path's;
(b) 300-step runs on 3 seeds end at final distances within 1% of the plain
    path's, with the same success (final m_g < the baseline m_r).

A flip of one ReLU (its input within rounding of 0) moves the whole gradient
by about 1/sqrt(units), 1e-4 to 1e-3 at 224 px; at 64 px with these seeds no
unit is that close, and the gradients agree to about 2e-6.  The full-size
numbers are measured by benchmarks/bench.py.
"""

import gc

import pytest
import torch

from vitrep.fast import linear as fastops, resnet as resnet_fast
from vitrep.images import prepare, sample_path
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct_many
from vitrep.models.families import get_family
from vitrep.models.surgery import Surgery
from vitrep.models.taps import forward_tap, run_paths, tap_path

pytestmark = pytest.mark.skipif(not (fastops.enabled() and resnet_fast._probe()),
                                reason="oneDNN's packed convolutions are not in this torch build")

SIZE = 64


@pytest.fixture(scope="module")
def lm():
    return load_model(make_ref("resnet50", size=SIZE), "cpu")


@pytest.fixture(scope="module")
def cat64():
    return prepare(sample_path("cat"), SIZE)


def _init(seed: int, size: int, rows: int = 1) -> torch.Tensor:
    """The engine's starting image for ``seed`` (it draws the baseline's noise first)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(rows):
        torch.randn(3, size, size, generator=g)
        out.append(torch.randn(3, size, size, generator=g) * 0.05 + 0.7)
    return torch.stack(out)


def _step_grad(lm, paths, image, x0):
    """One engine step's input gradient: the L1 loss (scale 0.05) of each row against ``image``'s output."""
    with torch.no_grad():
        targets = run_paths(image, paths)
    x = x0.clone().requires_grad_(True)
    outs = run_paths(x, paths)
    loss = sum(0.05 * (o - t).abs().sum() for o, t in zip(outs, targets))
    (g,) = torch.autograd.grad(loss, x)
    return g, outs


def _rel(a, b) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _ran_fast(outs) -> bool:
    names = set()
    for o in outs:
        fn = o.grad_fn
        while fn is not None and len(names) < 50:  # the output's own node and a few below it
            names.add(type(fn).__name__)
            fn = fn.next_functions[0][0] if fn.next_functions else None
    return any("BottleneckFn" in n or "StemFn" in n for n in names)


TAPS = ["stem", "layer1", "layer2.1", "layer4", "logits"]


@pytest.mark.parametrize("removed", [(), ("skip",)], ids=["intact", "no-skip"])
@pytest.mark.parametrize("tap", TAPS)
def test_one_step_gradient_within_1e_5_of_plain(lm, cat64, tap, removed):
    surgery = Surgery(removed, None)
    x0 = _init(0, SIZE)
    g_fast, outs = _step_grad(lm, [tap_path(lm, tap, surgery, fast=True)], cat64, x0)
    g_plain, _ = _step_grad(lm, [tap_path(lm, tap, surgery, fast=False)], cat64, x0)
    assert _ran_fast(outs), "the fast path did not run"
    assert float(g_plain.norm()) > 0
    err = _rel(g_fast, g_plain)
    assert err <= 1e-5, f"{tap} without {removed}: one step's input gradient differs by {err:.2e} relative"


@pytest.mark.parametrize("size", [99, 100])  # odd and even sizes: every stride-2 layer with and without a remainder
@pytest.mark.parametrize("removed", [(), ("skip",)], ids=["intact", "no-skip"])
def test_any_input_size_and_batch_same_branch_gradient_within_1e_5(size, removed):
    """Three rows to layer4 at sizes whose feature maps are odd, against the plain formula taking the same
    ReLU and max-pool branches (a rounding-level pre-activation can flip a ReLU, which alone moves the
    whole gradient by ~1/sqrt(units), 1.7e-3 seen at 99 px; the bar is about everything else)."""
    lm = load_model(make_ref("resnet50", size=size), "cpu")
    m = lm.module
    g = torch.Generator().manual_seed(size)
    image = prepare(sample_path("cat"), size).expand(3, -1, -1, -1)
    x0 = torch.rand(3, 3, size, size, generator=g) * 0.1 + 0.65
    surgery = Surgery(removed, None)
    with torch.no_grad():
        target = forward_tap(lm, image, "layer4", surgery=surgery, fast=True)
    x = x0.clone().requires_grad_(True)
    out = forward_tap(lm, x, "layer4", surgery=surgery, fast=True)
    v = 0.05 * torch.sign(out.detach() - target)  # the L1 loss's gradient at the output, as the fast path has it
    xr = x0.clone().requires_grad_(True)
    ref = resnet_fast.same_branch_plain(m, xr, out, frozenset(removed))
    (g_fast,) = torch.autograd.grad(out, x, v)
    (g_ref,) = torch.autograd.grad(ref, xr, v)
    out_err, err = _rel(out.detach(), ref.detach()), _rel(g_fast, g_ref)
    assert out_err < 2e-5, f"layer4 at {size} px: output differs by {out_err:.2e}"
    assert err <= 1e-5, f"layer4 without {removed} at {size} px: input gradient differs by {err:.2e}"
    with torch.no_grad():  # and the same branches are the plain path's own, up to the few rounding-level flips
        plain = run_paths(x0, [tap_path(lm, "layer4", Surgery(removed, None), fast=False)] * 3)
    assert all(_rel(out[i].detach(), plain[i]) < 2e-5 for i in range(3))


def test_a_sweep_batch_of_mixed_taps_equals_single_rows():
    """Rows at different taps and surgeries in one batch (the prefix tree) give each row's lone result."""
    size = 99
    lm = load_model(make_ref("resnet50", size=size), "cpu")
    taps = [("stem", ()), ("layer1.2", ("skip",)), ("layer2", ()), ("layer3.1", ("skip",)), ("layer4", ())]
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(len(taps), 3, size, size, generator=g) * 0.1 + 0.65
    paths = [tap_path(lm, t, Surgery(r, None), fast=True) for t, r in taps]
    x = x0.clone().requires_grad_(True)
    outs = run_paths(x, paths)
    assert _ran_fast(outs)
    v = [torch.randn(o.shape, generator=g) for o in outs]
    (g_batch,) = torch.autograd.grad(outs, x, v)
    plain = run_paths(x0, [tap_path(lm, t, Surgery(r, None), fast=False) for t, r in taps])
    for i, path in enumerate(paths):
        xi = x0[i:i + 1].clone().requires_grad_(True)
        (oi,) = run_paths(xi, [path])
        (gi,) = torch.autograd.grad(oi, xi, v[i])
        assert _rel(outs[i].detach(), oi.detach()) < 1e-6 and _rel(g_batch[i], gi[0]) < 1e-5, taps[i]
        assert _rel(outs[i].detach(), plain[i].detach()) < 2e-5, taps[i]


def _ends(cat64, monkeypatch, fast: str, tap: str, init_mean: float = 0.7, **kw):
    """Final distances and success of 300-step runs on seeds 0-2, as one batch of three rows (rows never
    interact; on this tap the batched ends came out bit for bit those of three single runs, in 2/3 of the time)."""
    monkeypatch.setenv("VITREP_FAST", fast)
    out = []
    runs = reconstruct_many([cat64] * 3, [make_config("resnet50", tap, size=SIZE, steps=300, seed=seed,
                                                      report_every=100, init_mean=init_mean, **kw)
                                          for seed in range(3)])
    for r in runs:
        assert r.status == "done" and r.final["embedding_distance"] < 0.5 * r.curves["embedding_distance"][0]
        out.append((r.final["embedding_distance"], r.final["input_distance"], r.success))
    return out


def _worst(a, b) -> float:
    return max(abs(x[k] / y[k] - 1) for x, y in zip(a, b) for k in (0, 1))


ULP_INIT = 0.7 * (1 + 2e-7)  # the start image moved by about one float32 ulp (0.7 has a 6e-8 ulp)


def test_300_steps_end_within_1_percent_with_the_same_success(cat64, monkeypatch):
    """Bar (b) as stated: 3 seeds, 300 steps, final distances within 1%, the same success.  Where the
    plain path itself reproduces its ends to well under 1% when its start image moves by one ulp (the
    L2 loss and the paper's plain step at layer1: 0.4% seen), the fast path must meet 1% (0.3% seen)."""
    kw = dict(tap="layer1", loss="l2", loss_scale=1.0, optimizer="gd", lr_start=0.2, lr_end=0.02)
    fast, plain, ulp = _ends(cat64, monkeypatch, "1", **kw), _ends(cat64, monkeypatch, "0", **kw), \
        _ends(cat64, monkeypatch, "0", init_mean=ULP_INIT, **kw)
    assert _worst(ulp, plain) < 0.01, f"the plain path's own one-ulp spread is {_worst(ulp, plain):.2%}"
    assert _worst(fast, plain) <= 0.01, f"fast vs plain: {_worst(fast, plain):.2%} (plain vs one ulp: {_worst(ulp, plain):.2%})"
    assert [f[2] for f in fast] == [p[2] for p in plain]


def test_300_steps_with_the_engine_defaults_stay_within_the_plain_paths_own_spread(cat64, monkeypatch):
    """The engine's defaults (L1 loss, Adam) at layer1: this untrained ResNet's ReLU kinks and L1's sign
    make 300-step ends sensitive to rounding; the plain path moves its own final distances by 9% (2-3% at
    layer2) when its start image moves by one ulp, so no rounding-changing path can keep 1% here.  The
    fast path's ends (4.2% seen) must stay within 3x that spread (and 1% where the spread is smaller),
    with the same success."""
    kw = dict(tap="layer1")
    fast, plain, ulp = _ends(cat64, monkeypatch, "1", **kw), _ends(cat64, monkeypatch, "0", **kw), \
        _ends(cat64, monkeypatch, "0", init_mean=ULP_INIT, **kw)
    spread = _worst(ulp, plain)
    assert _worst(fast, plain) <= max(0.01, 3 * spread), \
        f"fast vs plain: {_worst(fast, plain):.2%}; plain vs one ulp: {spread:.2%}"
    assert [f[2] for f in fast] == [p[2] for p in plain] == [u[2] for u in ulp]


def test_packs_are_counted_dropped_and_bounded_by_the_budget(cat64, monkeypatch):
    lm = load_model(make_ref("resnet50", size=SIZE, seed=3), "cpu")  # a model of its own: no packs yet
    params = list(lm.module.parameters())
    x = cat64.clone().requires_grad_(True)
    path = tap_path(lm, "layer2", fast=True)
    before = fastops.pack_bytes(params)
    out = run_paths(x, [path])[0]
    assert _ran_fast([out])
    held = fastops.pack_bytes(params)
    convs = [m for m in lm.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert held > before and held <= 2 * sum(c.weight.numel() * 4 for c in convs) + 2 ** 20
    assert fastops.drop_packs(params) == held and fastops.pack_bytes(params) == 0
    monkeypatch.setenv("VITREP_FAST_BUDGET_MB", str(fastops.pack_bytes() / 2 ** 20))  # nothing more fits
    out = run_paths(x, [tap_path(lm, "layer2", fast=True)])[0]
    assert not _ran_fast([out]) and fastops.pack_bytes(params) == 0  # the plain path, still correct:
    torch.testing.assert_close(out, run_paths(x, [tap_path(lm, "layer2", fast=False)])[0])
    del out, x
    gc.collect()


def test_the_switch_and_training_mode_take_the_plain_path(lm, cat64, monkeypatch):
    x = cat64.clone().requires_grad_(True)
    monkeypatch.setenv("VITREP_FAST", "0")
    out = run_paths(x, [tap_path(lm, "layer1")])[0]  # tap_path's default follows the switch
    assert not _ran_fast([out])
    monkeypatch.setenv("VITREP_FAST", "1")
    assert _ran_fast([run_paths(x, [tap_path(lm, "layer1")])[0]])
    from torchvision.models.resnet import Bottleneck

    block = Bottleneck(64, 16).train()  # batch statistics: nothing to fold
    x8 = torch.randn(2, 64, 8, 8, requires_grad=True)
    assert resnet_fast.fast_block(block, x8) is None  # the fast path declines ...
    y = get_family("resnet").block_forward(block, x8, frozenset(), fast=True)  # ... and the adapter runs it plainly
    assert y.grad_fn is not None and "BottleneckFn" not in type(y.grad_fn).__name__
    assert not any(p.requires_grad for p in lm.module.parameters())
