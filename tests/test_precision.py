"""The precision setting (issue 20): what bf16 runs in, where it can run, its memo keys, and a slice of the fidelity
bar on real untrained models (the full 3 seeds x 3 images grid is benchmarks/precision.py's)."""

import pytest
import torch

from vitrep import precision as P
from vitrep.config import make_config
from vitrep.errors import ConfigError
from vitrep.fast import linear as fastops
from vitrep.models.registry import make_ref
from vitrep.reconstruction import reconstruct
from vitrep.running.runs import cache_key

needs_bf16 = pytest.mark.skipif(not P.cpu_bf16(), reason="this CPU has no native bf16 (AMX / AVX-512 BF16)")


def _no_bf16(monkeypatch):
    monkeypatch.setattr(P, "cpu_bf16", lambda: False)
    monkeypatch.setattr(P, "cpu_amx", lambda: False)


def test_bf16_on_a_cpu_without_it_is_one_sentence_and_auto_runs_fp32(monkeypatch):
    _no_bf16(monkeypatch)
    with pytest.raises(ConfigError) as e:
        make_config("vit_custom", 2, steps=3, precision="bf16", seed=101, device="cpu")
    text = e.value.say("cli")
    assert "no native bf16" in text and "--precision auto" in text
    assert text.count(". ") == 0 and "\n" not in text  # one sentence
    monkeypatch.setattr(type(make_ref("vit_custom").adapter), "auto_bf16", True)
    assert make_config("vit_custom", 2, steps=3, precision="auto", seed=102, device="cpu").precision == "fp32"


def test_the_command_line_says_so_in_one_sentence(monkeypatch, capsys):
    from vitrep.cli import main

    _no_bf16(monkeypatch)
    code = main(["reconstruct", "--model", "vit_custom", "--layer", "2", "--steps", "2", "--precision", "bf16",
                 "--device", "cpu", "--seed", "103", "--no-cache", "--quiet", "--image", "cat"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().startswith("vitrep: Precision bf16 cannot run here") and err.strip().count("\n") == 0


def test_auto_takes_bf16_only_for_measured_families_on_amx(monkeypatch):
    monkeypatch.setattr(P, "cpu_bf16", lambda: True)
    monkeypatch.setattr(P, "cpu_amx", lambda: True)
    monkeypatch.setattr(type(make_ref("vit_custom").adapter), "auto_bf16", True)
    assert make_config("vit_custom", 2, steps=3, precision="auto", seed=104, device="cpu").precision == "bf16"
    assert make_config("resnet50", "layer2", steps=3, precision="auto", seed=104, device="cpu").precision == "fp32"
    monkeypatch.setattr(P, "cpu_amx", lambda: False)  # AVX-512 BF16 alone: not measured, so fp32
    assert make_config("vit_custom", 2, steps=3, precision="auto", seed=105, device="cpu").precision == "fp32"
    monkeypatch.setenv("VITREP_FAST", "0")  # bf16 runs on the fast path
    monkeypatch.setattr(P, "cpu_amx", lambda: True)
    assert make_config("vit_custom", 2, steps=3, precision="auto", seed=106, device="cpu").precision == "fp32"
    with pytest.raises(ConfigError, match="VITREP_FAST=0"):
        make_config("vit_custom", 2, steps=3, precision="bf16", seed=107, device="cpu")


@pytest.mark.parametrize("record", ["precision_fidelity.json", "precision_fidelity_epyc.json"])
def test_auto_bf16_is_what_the_fidelity_grid_measured(record):
    """A family's ``auto_bf16`` is True exactly where each fidelity record has it holding the rule (every row:
    |dPSNR| <= 0.3 dB, |dSSIM| <= 0.01, the same success) and running faster, under GD and Adam; a family with a
    failed row, or none in the record, stays fp32 under auto.  ``precision_fidelity.json`` is the Intel Xeon with
    AMX (where auto takes bf16), made before SSIM joined the rule; ``precision_fidelity_epyc.json`` an AMD EPYC
    with AVX-512 BF16, judged by the whole rule."""
    import json
    from pathlib import Path

    from vitrep.models.families import FAMILIES

    doc = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / record).read_text())
    rows: dict[str, list] = {}
    for row in doc["fidelity"]:
        rows.setdefault(make_ref(row["model"]).adapter.name, []).append(row)
    assert {"vit", "resnet", "mixer"} <= set(rows)
    if record != "precision_fidelity.json":  # the record made before SSIM joined the rule is the only one without
        assert all("max_abs_dssim" in r for r in doc["fidelity"])
    for name, family in FAMILIES.items():
        mine = rows.get(name, [])
        held = (bool(mine) and {r["optimizer"] for r in mine} == {"gd", "adam"} and all(r["rows"] == 9 for r in mine)
                and all(r["max_abs_dpsnr"] <= P.FIDELITY_PSNR_DB and r["same_success"] and r["bf16_speed"] > 1
                        and r.get("max_abs_dssim", 0.0) <= P.FIDELITY_SSIM for r in mine))
        assert family.auto_bf16 == held, (name, [(r["layer"], r["optimizer"], r["max_abs_dpsnr"]) for r in mine])
    assert not FAMILIES["resnet"].auto_bf16  # its Adam row moved 0.35 dB on the Xeon, 0.41 dB on the EPYC


def test_fp32_keys_are_those_from_before_and_bf16_keys_differ(cat32, tiny_ref):
    from vitrep.images import content_hash
    from vitrep.models.weights import weights_identity
    from vitrep.running.memo import make_key, torch_release

    c = make_config(tiny_ref, 2, steps=3, device="cpu")
    d = c.to_dict()
    assert d.pop("precision") == "fp32"
    d["device"] = "cpu"
    before = make_key("reconstruct", image=content_hash(cat32), config=d, weights=weights_identity(c.model),
                      torch=torch_release())
    assert cache_key(cat32, c) == before
    if P.cpu_bf16():
        assert cache_key(cat32, make_config(tiny_ref, 2, steps=3, device="cpu", precision="bf16")) != before


@needs_bf16
def test_bf16_products_on_cast_weights_with_float32_around_them():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 48, generator=g)
    b = torch.randn(64, generator=g)
    x = torch.randn(2, 7, 48, generator=g, requires_grad=True)
    ref = torch.nn.functional.linear(x, w, b)
    before = fastops.pack_bytes([w])
    with fastops.compute("bf16"):
        y = fastops.linear(x, w, b)
        assert fastops.bf16_on()
    assert not fastops.bf16_on()  # the setting ends with the block
    assert fastops.pack_bytes([w]) - before == w.numel() * 4  # bf16 W and W^T packed, kept and counted with the packs
    assert y.dtype == torch.float32
    rel = float((y - ref).detach().norm() / ref.detach().norm())
    assert 1e-5 < rel < 1e-2  # bf16 inputs rounded (8 bits of mantissa), sums accumulated in float32
    (gx,) = torch.autograd.grad(y.sum(), x)
    (gref,) = torch.autograd.grad(ref.sum(), x)
    assert gx.dtype == torch.float32 and float((gx - gref).norm() / gref.norm()) < 1e-2


@needs_bf16
def test_a_bf16_run_records_it_and_keeps_float32_state(cat32, tiny_ref):
    c = make_config(tiny_ref, 3, steps=6, optimizer="adam", device="cpu", precision="bf16")
    r = reconstruct(cat32, c)
    assert r.config.precision == "bf16" and r.summary()["config"]["precision"] == "bf16"
    assert all(isinstance(v, float) for v in r.final.values())
    f32 = reconstruct(cat32, make_config(tiny_ref, 3, steps=6, optimizer="adam", device="cpu"))
    assert r.final != f32.final  # it did run differently
    assert abs(r.final["psnr"] - f32.final["psnr"]) < 0.3


# A slice of the fidelity bar (benchmarks/precision.py runs 3 seeds x 3 images, GD and Adam, at full step counts):
# one seed, the cat, the calibrated optimizer, a few steps (the file stays near a minute on 2 cores).
SLICE = [("vit_b_32", {}, 1, 60), ("vit_b_32", {}, 12, 15), ("resnet50", {}, "layer2", 30), ("mixer", {}, 4, 15)]


@needs_bf16
@pytest.mark.parametrize("name,arch,layer,steps", SLICE, ids=[f"{n}-{l}" for n, _, l, _ in SLICE])
def test_fidelity_slice_bf16_within_0_3_db_and_same_success(cat224, name, arch, layer, steps):
    ref = make_ref(name, **arch)
    runs = {p: reconstruct(cat224, make_config(ref, layer, steps=steps, device="cpu", precision=p, report_every=steps))
            for p in ("fp32", "bf16")}
    a, b = runs["fp32"], runs["bf16"]
    assert b.config.precision == "bf16" and a.status == b.status == "done"
    assert abs(a.final["psnr"] - b.final["psnr"]) <= 0.3, (a.final, b.final)
    assert a.success == b.success


def test_tf32_off_a_gpu_is_one_sentence_and_auto_takes_it_only_on_measured_gpus(monkeypatch):
    with pytest.raises(ConfigError) as e:
        make_config("vit_custom", 2, steps=3, precision="tf32", seed=108, device="cpu")
    text = e.value.say("cli")
    assert text == ("Precision tf32 cannot run here: TF32 runs on CUDA GPUs of the Ampere generation or newer, not "
                    "on the CPU; precision auto runs fp32 on it (--precision auto).")
    gpu = torch.device("cuda")
    monkeypatch.setattr(P, "cuda_tf32", lambda d: True)
    monkeypatch.setattr(P, "gpu_name", lambda d: "NVIDIA H100 80GB HBM3")
    assert P.resolve("tf32", False, gpu) == "tf32" and P.resolve("fp32", False, gpu) == "fp32"
    assert P.resolve("auto", True, gpu) == "fp32"  # not in precision_gpus.json: not measured, so float32
    monkeypatch.setattr(P, "tf32_held", lambda: frozenset({"NVIDIA H100 80GB HBM3"}))
    assert P.resolve("auto", True, gpu) == "tf32"
    monkeypatch.setattr(P, "cuda_tf32", lambda d: False)  # a GPU without TF32 units
    assert P.resolve("auto", True, gpu) == "fp32"
    with pytest.raises(ConfigError, match=r"this GPU \(NVIDIA H100 80GB HBM3\) has no TF32 units"):
        P.resolve("tf32", False, gpu)


def test_every_gpu_auto_takes_tf32_on_has_a_passing_record():
    """A GPU enters precision_gpus.json only with benchmarks/gpu_precision.py's record of it holding the rule."""
    import json
    from pathlib import Path

    listed = json.loads(P.GPUS_FILE.read_text())["tf32_holds"]
    for name, record in listed.items():
        doc = json.loads((Path(__file__).parents[1] / record).read_text())
        assert doc["gpu"] == name and doc["rule"]["holds"], (name, record)


def test_the_one_fidelity_rule():
    row = lambda psnr, ssim, ok=True: {"psnr": psnr, "ssim": ssim, "success": ok}  # noqa: E731
    base = [row(20.0, 0.60), row(25.0, 0.80, False)]
    assert P.fidelity(base, [row(20.29, 0.609), row(24.8, 0.791, False)])["holds"]
    assert not P.fidelity(base, [row(20.31, 0.60), row(25.0, 0.80, False)])["holds"]  # PSNR 0.31 dB off
    assert not P.fidelity(base, [row(20.0, 0.6101), row(25.0, 0.80, False)])["holds"]  # SSIM 0.0101 off
    assert not P.fidelity(base, [row(20.0, 0.60), row(25.0, 0.80, True)])["holds"]  # a success more
    got = P.fidelity(base, base, ["HELD", "NOT HELD"], ["HELD", "HELD"])
    assert not got["holds"] and not got["same_verdicts"] and got["max_abs_dpsnr"] == 0
    with pytest.raises(ValueError):
        P.fidelity(base, base[:1])
