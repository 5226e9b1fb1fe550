"""The command line as a user runs it: a real ViT-B/32 on the bundled cat, the memo, the files it writes."""

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from .conftest import ROOT, run_cli

RESULT_KEYS = ("final.embedding_distance", "final.input_distance", "final.psnr", "baseline.embedding_distance",
               "baseline.input_distance", "success", "steps", "seconds", "steps_per_second", "status")


def vitrep(*args, env=None):
    """The README's command in a process of its own (elsewhere ``run_cli``: the same main() in this process)."""
    return subprocess.run([sys.executable, "-m", "vitrep", *args], cwd=ROOT, capture_output=True, text=True, env=env)


def _get(doc, dotted):
    for part in dotted.split("."):
        doc = doc[part]
    return doc


def test_readme_reconstruction_memo_and_no_cache(tmp_path):
    """Acceptance: the README's command writes four files, m_g halves, the cat is back; a repeat is a memo hit."""
    args = ["reconstruct", "--image", "assets/samples/chelsea.png", "--model", "vit_b_32", "--weights", "untrained",
            "--layer", "1", "--steps", "300", "--cache-dir", str(tmp_path / "memo")]
    first = vitrep(*args, "--out", str(tmp_path / "a"))
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

    second = vitrep(*args, "--out", str(tmp_path / "b"))
    assert second.returncode == 0
    assert re.search(r"memo hit: result read from the disk memo in ([\d.]+) s", second.stdout), second.stdout
    doc2 = json.loads((tmp_path / "b" / "result.json").read_text())
    for k in RESULT_KEYS[:-4] + ("status", "steps", "seconds"):
        assert _get(doc2, k) == _get(doc, k)  # "seconds" too: the stored result, not a second computation

    third = run_cli(*args, "--out", str(tmp_path / "c"), "--no-cache", "--quiet")
    doc3 = json.loads((tmp_path / "c" / "result.json").read_text())
    assert "memo hit" not in third.stdout
    for k in ("final.embedding_distance", "final.input_distance", "final.psnr", "baseline.embedding_distance"):
        assert _get(doc3, k) == _get(doc, k)


def test_every_flag_reaches_result_json(tmp_path):
    p = run_cli("reconstruct", "--image", "coffee", "--model", "vit_custom", "--patch", "8", "--width", "32",
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
    p2 = run_cli("reconstruct", "--image", "coffee", "--config", str(tmp_path / "o" / "result.json"),
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
    assert run_cli(*args, env=env).returncode == 0
    assert any((tmp_path / "envmemo").iterdir())
    assert "memo hit" in run_cli(*args, env=env).stdout


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
    p = run_cli(*(base + args))
    if words is None:  # CUDA: fine where present, one sentence where not
        import torch

        if torch.cuda.is_available():
            assert p.returncode == 0
            return
        words = "no usable GPU"
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


# --- issue 19: public mode on the command line; checkpoints that would run code --------------------

def _public_env(tmp_path):
    import os

    return dict(os.environ, VITREP_PUBLIC="1", VITREP_UPLOAD_DIR=str(tmp_path / "uploads"))


def _sentence(p) -> str:
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vitrep: ") and lines[0].endswith("."), p.stderr
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--model", "vit_custom", "--size", "4096"], "This public server takes size at most 64 for vit_custom, not 4096"),
    (["--model", "vit_custom", "--width", "100000", "--depth", "1000"], "takes width at most 96"),
    (["--model", "vit_custom", "--steps", "100000"], "This public server runs at most 1,000 steps, not 100,000"),
    (["--model", "vit_custom", "--weights", "/etc/passwd"], "not a path on the server"),
    (["--model", "vit_custom", "--swap", "stem", "--swap-from", "/etc/passwd"], "not a path on the server"),
    (["--model", "resnet50", "--size", "2048", "--layer", "layer1"], "takes size at most 224 for resnet50"),
])
def test_public_mode_refuses_on_the_command_line(tmp_path, args, words):
    """The probes: in public mode the CLI ran 100,000 steps, and vit_custom at 4096 px, until killed."""
    p = run_cli("reconstruct", "--image", "cat", "--quiet", "--no-cache", "--out", str(tmp_path / "o"), *args,
                       env=_public_env(tmp_path))
    assert words in _sentence(p)
    assert not (tmp_path / "o").exists()


def test_an_oversized_row_is_refused_locally_too(tmp_path):
    """Local mode, no budget set: vit_custom at 4096 px needs thousands of GB for one row; refused before any
    work with the machine's memory named, instead of running until killed."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("VITREP_PUBLIC", "VITREP_MEMORY_MB")}
    p = run_cli("reconstruct", "--image", "cat", "--model", "vit_custom", "--size", "4096", "--quiet",
                       "--no-cache", "--out", str(tmp_path / "o"), env=env)
    line = _sentence(p)
    assert "size 4096) reconstructing from encoder-1 needs about" in line and "of memory" in line


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["--weights", "--config", "--swap-from"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, how):
    """weights_only loading through every path a checkpoint takes: one sentence, and the pickle's code never ran."""
    import torch

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": _Evil(str(marker))}, evil)
    base = ["reconstruct", "--image", "cat", "--model", "vit_custom", "--steps", "2", "--quiet", "--no-cache",
            "--out", str(tmp_path / "o")]
    if how == "--weights":
        extra = ["--weights", str(evil)]
    elif how == "--swap-from":
        extra = ["--swap", "stem", "--swap-from", str(evil)]
    else:
        cfg = tmp_path / "c.json"
        cfg.write_text(json.dumps({"model": {"name": "vit_custom", "weights": str(evil)}, "steps": 2}))
        extra = ["--config", str(cfg)]
    p = run_cli(*base, *extra)
    assert "evil.pt is not a readable checkpoint" in _sentence(p)
    assert not marker.exists()


@pytest.mark.parametrize("command", [["preset", "single-encoders", "--quick"],
                                     ["reconstruct", "--image", "cat", "--model", "vit_custom", "--steps", "2"],
                                     ["condition", "--image", "cat", "--model", "vit_custom", "--layer", "1"]])
def test_an_out_that_is_a_file_is_one_sentence(command, tmp_path, capsys):
    """--out naming an existing file: one sentence and exit 2 before anything runs, not a FileExistsError."""
    from vitrep.cli import main

    f = tmp_path / "taken"
    f.write_text("not a folder")
    assert main([*command, "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"vitrep: --out {f} is a file, not a folder; give a folder to write into."
    assert f.read_text() == "not a folder"
