"""The command line as a user runs it: a real ViT-B/32 on the bundled cat, the memo, the files it writes."""

import csv
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from .conftest import ROOT

RESULT_KEYS = ("final.embedding_distance", "final.input_distance", "final.psnr", "baseline.embedding_distance",
               "baseline.input_distance", "success", "steps", "seconds", "steps_per_second", "status")


def vitrep(*args, env=None):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "vitrep", *args], cwd=ROOT, capture_output=True, text=True, env=env)
    return p, time.perf_counter() - t0


def _get(doc, dotted):
    for part in dotted.split("."):
        doc = doc[part]
    return doc


def test_readme_reconstruction_memo_and_no_cache(tmp_path):
    """Acceptance: the README's command writes four files, m_g halves, the cat is back; a repeat is a memo hit."""
    args = ["reconstruct", "--image", "assets/samples/chelsea.png", "--model", "vit_b_32", "--weights", "untrained",
            "--layer", "1", "--steps", "300", "--cache-dir", str(tmp_path / "memo")]
    first, t_first = vitrep(*args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    out = tmp_path / "a"
    for f in ("target.png", "reconstruction.png", "curves.csv", "result.json"):
        assert (out / f).is_file()
    rows = list(csv.DictReader(open(out / "curves.csv")))
    m = [float(r["embedding_distance"]) for r in rows]
    assert m[-1] <= 0.5 * m[0], m
    doc = json.loads((out / "result.json").read_text())
    for k in RESULT_KEYS:
        _get(doc, k)
    assert doc["status"] == "done" and doc["steps"] == 300 and doc["success"] is True
    target = np.asarray(Image.open(out / "target.png"), dtype=float)
    rec = np.asarray(Image.open(out / "reconstruction.png"), dtype=float)
    assert np.corrcoef(target.ravel(), rec.ravel())[0, 1] > 0.9  # it is the cat, not noise
    assert doc["final"]["psnr"] > 20

    second, t_second = vitrep(*args, "--out", str(tmp_path / "b"))
    assert second.returncode == 0
    hit = re.search(r"memo hit: result read from the disk memo in ([\d.]+) s", second.stdout)
    assert hit and float(hit.group(1)) < 1.0
    doc2 = json.loads((tmp_path / "b" / "result.json").read_text())
    for k in RESULT_KEYS[:-4] + ("status", "steps", "seconds"):
        assert _get(doc2, k) == _get(doc, k)
    assert t_second < 0.5 * t_first

    third, _ = vitrep(*args, "--out", str(tmp_path / "c"), "--no-cache", "--quiet")
    doc3 = json.loads((tmp_path / "c" / "result.json").read_text())
    assert "memo hit" not in third.stdout
    for k in ("final.embedding_distance", "final.input_distance", "final.psnr", "baseline.embedding_distance"):
        assert _get(doc3, k) == _get(doc, k)


def test_every_flag_reaches_result_json(tmp_path):
    p, _ = vitrep("reconstruct", "--image", "coffee", "--model", "vit_custom", "--patch", "8", "--width", "32",
                  "--depth", "3", "--heads", "2", "--size", "32", "--model-seed", "4", "--layer", "only-encoder-2",
                  "--no-pos-embed", "--steps", "9", "--optimizer", "gd", "--no-backoff", "--lr", "0.5", "--lr-end", "0.1", "--loss", "l2",
                  "--loss-scale", "0.2", "--blur", "1.5", "--blur-end", "0.3", "--clamp", "--normalize",
                  "--init-mean", "0.6", "--init-std", "0.1", "--seed", "3", "--report-every", "3", "--device", "cpu",
                  "--resize", "stretch", "--remove", "mlp,ln_2", "--blocks", "2", "--quiet", "--no-cache",
                  "--out", str(tmp_path / "o"))
    assert p.returncode == 0, p.stderr
    c = json.loads((tmp_path / "o" / "result.json").read_text())["config"]
    assert c["model"] == {"name": "vit_custom", "weights": "untrained", "seed": 4, "patch": 8, "width": 32,
                          "depth": 3, "heads": 2, "size": 32, "swaps": [], "swap_from": "trained"}
    assert (c["tap"], c["pos_embed"], c["steps"], c["lr_start"], c["lr_end"], c["loss"], c["loss_scale"]) == \
        ("only-encoder-2", False, 9, 0.5, 0.1, "l2", 0.2)
    assert (c["blur_start"], c["blur_end"], c["clamp"], c["normalize"], c["init_mean"], c["init_std"]) == \
        (1.5, 0.3, True, True, 0.6, 0.1)
    assert (c["seed"], c["report_every"], c["device"], c["resize"]) == (3, 3, "cpu", "stretch")
    assert (c["optimizer"], c["backoff"]) == ("gd", False)
    assert c["surgery"] == {"remove": ["ln_2", "mlp"], "blocks": [2]}
    # the result.json reruns as a config
    p2, _ = vitrep("reconstruct", "--image", "coffee", "--config", str(tmp_path / "o" / "result.json"),
                   "--quiet", "--no-cache", "--out", str(tmp_path / "o2"))
    assert p2.returncode == 0, p2.stderr
    d1 = json.loads((tmp_path / "o" / "result.json").read_text())
    d2 = json.loads((tmp_path / "o2" / "result.json").read_text())
    assert d1["config"] == d2["config"] and d1["final"] == d2["final"]


def test_cache_dir_from_environment(tmp_path):
    import os

    env = dict(os.environ, VITREP_CACHE_DIR=str(tmp_path / "envmemo"))
    args = ["reconstruct", "--image", "cat", "--model", "vit_custom", "--steps", "4", "--quiet",
            "--out", str(tmp_path / "o")]
    assert vitrep(*args, env=env)[0].returncode == 0
    assert any((tmp_path / "envmemo").iterdir())
    assert "memo hit" in vitrep(*args, env=env)[0].stdout


@pytest.mark.parametrize("args, words", [
    (["--model", "vit_b_32", "--layer", "13"], "encoders 1 to 12"),
    (["--model", "nope"], "no model called 'nope'"),
    (["--model", "vit_b_32", "--remove", "wings"], "not a removable component"),
    (["--model", "vit_custom", "--steps", "0"], "Steps must be at least 1"),
    (["--model", "vit_custom", "--image", "/no/such.png"], "does not exist"),
    (["--model", "vit_custom", "--device", "cuda:0"], None),
])
def test_user_errors_are_one_sentence(tmp_path, args, words):
    base = ["reconstruct", "--image", "cat", "--steps", "2", "--out", str(tmp_path / "o")]
    p, _ = vitrep(*(base + args))
    if words is None:  # CUDA: fine where present, one sentence where not
        import torch

        if torch.cuda.is_available():
            assert p.returncode == 0
            return
        words = "no usable GPU"
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr
