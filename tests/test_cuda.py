"""The CUDA path: graph replay equals the eager loop and the CPU (needs a GPU; skipped without).

CI has no GPU, so these run where one is lent (README, Performance).
"""

import pytest
import torch

from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref
from vitrep.descent.cudagraph import CudaGraphStep as _CudaGraphStep
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct, reconstruct_many

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _run(image, monkeypatch, graphs: bool, **kw):
    monkeypatch.setenv("VITREP_CUDA_GRAPHS", "1" if graphs else "0")
    kw.setdefault("optimizer", "gd")  # the paper's plain step unless a test names Adam
    return reconstruct(image, make_config("vit_b_32", device="cuda", **kw))


@pytest.mark.parametrize("kw", [dict(layer=12, steps=100, loss="l2", loss_scale=1.0, lr_start=0.05, lr_end=0.01),
                                dict(layer=12, steps=100, loss="l2", optimizer="adam", lr_start=0.1, lr_end=0.01),
                                dict(layer=12, steps=10), dict(layer=3, steps=40, loss="l2", loss_scale=1.0, lr_start=0.05, lr_end=0.01, clamp=True, blur_end=0.0)])
def test_graph_replay_equals_the_eager_loop(kw, cat224, monkeypatch):
    eager = _run(cat224, monkeypatch, False, pos_embed=False, report_every=5, **kw)
    before = _CudaGraphStep.captures
    graph = _run(cat224, monkeypatch, True, pos_embed=False, report_every=5, **kw)
    assert _CudaGraphStep.captures == before + 1  # the graph path ran
    assert graph.status == eager.status == "done" and graph.steps == eager.steps
    for key in ("embedding_distance", "input_distance", "psnr"):
        assert graph.final[key] == pytest.approx(eager.final[key], rel=1e-4), key
    assert graph.curves["step"] == eager.curves["step"]
    for a, b in zip(graph.curves["loss"], eager.curves["loss"]):
        assert a == pytest.approx(b, rel=1e-4)
    assert graph.final["embedding_distance"] < graph.curves["embedding_distance"][0]


def test_cuda_matches_cpu(cat224, monkeypatch):
    kw = dict(layer=4, steps=60, loss="l2", loss_scale=1.0, lr_start=0.05, lr_end=0.01, report_every=20)
    gpu = _run(cat224, monkeypatch, True, **kw)
    cpu = reconstruct(cat224, make_config("vit_b_32", device="cpu", optimizer="gd", **kw))
    for key in ("embedding_distance", "input_distance"):
        assert gpu.final[key] == pytest.approx(cpu.final[key], rel=1e-4), key


def test_graph_sweep_equals_single_runs(cat224, monkeypatch):
    monkeypatch.setenv("VITREP_CUDA_GRAPHS", "1")
    ref = make_ref("vit_b_32")
    cfgs = [make_config(ref, f"encoder-{k}", steps=12, report_every=12, device="cuda", loss="l2", loss_scale=1.0,
                        optimizer="gd", lr_start=0.05, lr_end=0.01) for k in (1, 2, 6, 12)]
    batched = reconstruct_many([cat224] * len(cfgs), cfgs)
    for cfg, b in zip(cfgs, batched):
        s = reconstruct(cat224, cfg)
        for key in ("embedding_distance", "input_distance", "psnr"):
            assert b.final[key] == pytest.approx(s.final[key], rel=1e-4)


def test_graph_stop_divergence_and_untouched_model(cat224, monkeypatch):
    monkeypatch.setenv("VITREP_CUDA_GRAPHS", "1")
    lm = load_model(make_ref("vit_b_32"), "cuda")
    before = {k: v.clone() for k, v in lm.module.state_dict().items()}
    r = reconstruct(cat224, make_config("vit_b_32", steps=200, report_every=10, device="cuda"),
                    progress=lambda p: p.step >= 30)
    assert r.status == "stopped" and r.steps == 30
    d = reconstruct(cat224, make_config("vit_b_32", steps=50, report_every=10, lr_start=1e38, lr_end=1e38,
                                        optimizer="gd", device="cuda"))
    assert d.status.startswith("diverged at step")
    for k, v in lm.module.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.backends.cuda.matmul.allow_tf32  # the float32 default is restored


def test_runs_are_float32_even_where_the_process_turned_tf32_on(cat224, monkeypatch):
    kw = dict(layer=12, steps=20, loss="l2", loss_scale=1.0, lr_start=0.05, lr_end=0.01, report_every=20)
    plain = _run(cat224, monkeypatch, True, **kw)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    again = _run(cat224, monkeypatch, True, **kw)
    assert torch.backends.cuda.matmul.allow_tf32  # the process's setting is given back
    assert again.final["embedding_distance"] == pytest.approx(plain.final["embedding_distance"], rel=1e-6)
