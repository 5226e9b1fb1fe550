"""Results recorded before the engine was given its floors (issue 18) still come out, within float rounding.

``tests/data/recorded_results.json`` was written by this file's ``record()`` on the code before
the restructuring; the same seeds must give the same final distances (relative 1e-4: rounding only,
over runs short enough that the L1 loss's sign flips do not grow it, see README Performance).  Its keys
were made again when CACHE_VERSION became 4 (curves carry SSIM); its numbers are the original record's.
"""

import json

import pytest

from .conftest import ROOT

DATA = ROOT / "tests" / "data" / "recorded_results.json"
RECORDED_ON = "2.14"  # the torch release (major.minor) the record was written on: memo keys carry it


def cases():
    from vitrep.config import make_config
    from vitrep.models.registry import make_ref

    tiny = make_ref("vit_custom", patch=8, width=32, depth=4, heads=2, size=32)
    return {
        "vit_gd_l2_encoder3": make_config(tiny, 3, steps=40, optimizer="gd", loss="l2", loss_scale=1.0,
                                          lr_start=0.05, lr_end=0.01, report_every=10),
        "vit_adam_l1_only2_no_attention": make_config(tiny, "only-encoder-2", remove="attention", steps=10,
                                                      optimizer="adam", lr_start=0.1, lr_end=0.01, report_every=5),
        "vit_calibrated_gd_embed_pos": make_config(tiny, "embed", steps=10, optimizer="gd", report_every=5),
        "resnet_layer1_no_skip": make_config(make_ref("resnet50", size=64), "layer1", remove="skip", steps=8,
                                             optimizer="gd", loss="l2", loss_scale=1.0, lr_start=0.01, lr_end=0.005,
                                             report_every=4),
        "mixer_block2_no_norms": make_config(make_ref("mixer", patch=8, width=32, depth=2, size=32), 2,
                                             remove="norm_1,norm_2", steps=20, optimizer="gd", loss="l2",
                                             loss_scale=1.0, lr_start=0.02, lr_end=0.01, report_every=10),
    }


def run_all(key_release: str | None = None) -> dict:
    """Every case's numbers and memo key; ``key_release`` makes the keys as under that torch release (a key
    carries torch's major.minor, so a record written on one release names its keys for that release)."""
    import contextlib
    from unittest import mock

    from vitrep.generate import generate, generate_key, make_generate_config
    from vitrep.images import prepare, sample_path
    from vitrep.models.registry import make_ref
    from vitrep.reconstruction import reconstruct
    from vitrep.running.runs import cache_key

    def as_recorded():
        return mock.patch("torch.__version__", f"{key_release}.0") if key_release else contextlib.nullcontext()

    out = {}
    for name, cfg in cases().items():
        image = prepare(sample_path("cat"), cfg.model.input_size)
        r = reconstruct(image, cfg)
        out[name] = {"final": r.final, "baseline": r.baseline, "steps": r.steps,
                     "curve": r.curves["embedding_distance"]}
        with as_recorded():
            out[name]["key"] = cache_key(image, cfg)
    g = make_generate_config(make_ref("vit_custom", seed=2), "tabby", steps=12, jitter=8, jitter_start=6,
                             report_every=3, device="cpu")
    made = generate(g)
    with as_recorded():
        key = generate_key(g)
    out["generate_vit_custom_jitter"] = {"curve": made.curves["target_logit"], "steps": made.steps, "key": key}
    return out


def record() -> None:  # python -c "from tests.test_results_unchanged import record; record()"
    DATA.write_text(json.dumps(run_all(), indent=1) + "\n")  # then set RECORDED_ON to this torch's major.minor


def test_the_same_seeds_give_the_same_distances_as_before_the_restructuring():
    before = json.loads(DATA.read_text())
    now = run_all(key_release=RECORDED_ON)  # on any torch: its numbers within rounding, the keys bit for bit
    assert sorted(now) == sorted(before)
    for name in before:
        b, n = before[name], now[name]
        assert n["steps"] == b["steps"] and n["key"] == b["key"], name  # the memo keys did not move either
        for part in ("final", "baseline"):
            for k, v in b.get(part, {}).items():
                assert n[part][k] == pytest.approx(v, rel=1e-4, abs=1e-6), (name, part, k)
        assert n["curve"] == pytest.approx(b["curve"], rel=1e-4, abs=1e-6), name


def test_a_memo_key_names_the_torch_release(cat32, tiny_ref):
    """Results from another torch minor release are not reused (its kernels may round differently); a patch
    release keeps them."""
    from unittest import mock

    from vitrep.config import make_config
    from vitrep.running.runs import cache_key

    cfg = make_config(tiny_ref, 2, steps=3, device="cpu")
    keys = {}
    for v in ("2.14.0", "2.14.1", "2.15.0"):
        with mock.patch("torch.__version__", v):
            keys[v] = cache_key(cat32, cfg)
    assert keys["2.14.0"] == keys["2.14.1"] != keys["2.15.0"]
