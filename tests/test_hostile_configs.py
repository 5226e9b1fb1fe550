"""Hostile ``--config`` files through the real command line: one sentence, exit status 2, never a traceback.

Each file is what a stranger (or a typo) could hand ``python -m vitrep
reconstruct --config FILE``: wrong types, numbers out of range, unknown names,
structures where names go, deep nesting.  Before issue 19, 15 of these gave a
traceback and several ran silently wrong (``init_mean: NaN``, ``clamp: "no"``
taken as true, swaps ``"stem"`` split into letters).
"""

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, run_cli

GOOD_MODEL = {"name": "vit_custom", "weights": "untrained", "seed": 0, "patch": 8, "width": 32, "depth": 2,
              "heads": 2, "size": 32, "swaps": [], "swap_from": "trained"}


def cfg(**over):
    """A small, valid config with ``over`` applied (``model`` as a whole, or ``model.x`` for one of its fields)."""
    model = dict(GOOD_MODEL)
    doc = {"model": model, "tap": "encoder-1", "steps": 3}
    for k, v in over.items():
        if k.startswith("model."):
            model[k[len("model."):]] = v
        elif v is DROP:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc, allow_nan=True)


DROP = object()

# (name, file text, words the one sentence must hold)
HOSTILE = [
    ("steps as a string", cfg(steps="300"), "steps must be a whole number"),
    ("steps 2.5", cfg(steps=2.5), "steps must be a whole number"),
    ("steps 1e309", cfg(steps=1).replace('"steps": 1', '"steps": 1e309'), "steps must be a whole number"),
    ("steps true", cfg(steps=True), "steps must be a whole number"),
    ("steps -5", cfg(steps=-5), "steps must be a whole number"),
    ("steps 10**12", cfg(steps=10 ** 12), "steps must be a whole number from 1 to 10,000,000"),
    ("steps with 5000 digits", cfg(steps=1).replace('"steps": 1', '"steps": ' + "9" * 5000), "not a readable JSON"),
    ("no model", cfg(model=DROP), "has no model"),
    ("model a string", cfg(model="vit_b_32"), "model must be an object"),
    ("model without a name", cfg(model={"weights": "untrained"}), "model has no name"),
    ("model name a number", cfg(model={"name": 5}), "model.name must be a text"),
    ("unknown model", cfg(model={"name": "nope"}), "no model called 'nope'"),
    ("unknown model key", cfg(**{"model.colour": "red"}), "model has unknown field(s) 'colour'"),
    ("model seed 2**70", cfg(**{"model.seed": 2 ** 70}), "model.seed must be a whole number"),
    ("model seed -1", cfg(**{"model.seed": -1}), "model.seed must be a whole number"),
    ("model seed a float", cfg(**{"model.seed": 1.5}), "model.seed must be a whole number"),
    ("width 1e9", cfg(**{"model.width": 10 ** 9}), "model.width must be a whole number from 1 to 65,536"),
    ("width 1e9 float", cfg(**{"model.width": 1e9}), "model.width must be a whole number"),
    ("patch true", cfg(**{"model.patch": True}), "model.patch must be a whole number"),
    ("patch 0", cfg(**{"model.patch": 0}), "model.patch must be a whole number"),
    ("heads that do not divide", cfg(**{"model.heads": 3}), "not divisible by 3 heads"),
    ("swaps a string", cfg(**{"model.swaps": "stem"}), "model.swaps must be a list of names"),
    ("swaps of numbers", cfg(**{"model.swaps": [1, 2]}), "model.swaps must be a list of names"),
    ("swap_from a number", cfg(**{"model.swap_from": 12}), "model.swap_from must be a text"),
    ("weights a server file", cfg(**{"model.weights": "/etc/passwd"}), "passwd is not a readable checkpoint"),
    ("device meta", cfg(device="meta"), "'meta' is not a device name"),
    ("device a list", cfg(device=["cpu"]), "device must be a text"),
    ("init_mean NaN", cfg(init_mean=float("nan")), "init_mean must be a finite number from -10 to 10"),
    ("init_std 1e308", cfg(init_std=1e308), "init_std must be a finite number from 0 to 10"),
    ("blur infinite", cfg(steps=3).replace('"steps": 3', '"steps": 3, "blur_start": 1e309'), "blur_start must be a finite number from 0 to 100"),
    ("loss_scale negative", cfg(loss_scale=-0.1), "loss_scale must be a finite number >= 0"),
    ("lr a word", cfg(lr_start="fast"), "lr_start must be a number >= 0"),
    ("clamp no", cfg(clamp="no"), "clamp must be true or false"),
    ("pos_embed null", cfg(pos_embed=None), "pos_embed must be true or false"),
    ("loss l3", cfg(loss="l3"), "loss must be one of l1, l2"),
    ("optimizer sgd", cfg(optimizer="sgd"), "optimizer must be one of auto, gd, adam"),
    ("resize squash", cfg(resize="squash"), "resize must be one of crop, stretch"),
    ("report_every 0", cfg(report_every=0), "report_every must be a whole number"),
    ("seed 1.5", cfg(seed=1.5), "seed must be a whole number"),
    ("tap a list", cfg(tap=["encoder-1"]), "tap must be a text"),
    ("tap beyond the model", cfg(tap="encoder-99"), "encoders 1 to 2"),
    ("surgery a string", cfg(surgery="attention"), "surgery must be an object"),
    ("surgery remove a string", cfg(surgery={"remove": "attention"}), "surgery.remove must be a list of names"),
    ("surgery blocks 1e9", cfg(surgery={"remove": ["mlp"], "blocks": [1, 10 ** 9]}), "surgery.blocks must be"),
    ("surgery unknown component", cfg(surgery={"remove": ["wings"]}), "'wings' is not a removable component"),
    ("surgery unknown key", cfg(surgery={"extra": 1}), "surgery has unknown field(s) 'extra'"),
    ("unknown field", cfg(bogus=1), "unknown field(s) 'bogus'"),
    ("a list, not an object", "[1, 2, 3]", "must hold a JSON object"),
    ("config a string", json.dumps({"config": "hello"}), "must hold a JSON object"),
    ("100k-deep nesting", json.dumps({"config": 1}).replace("1", "[" * 100_000 + "]" * 100_000), "nested too deeply"),
    ("not JSON", "model = vit_b_32", "not a readable JSON config"),
    ("not UTF-8", "\udcff", "not a readable JSON config"),
    ("empty", "", "not a readable JSON config"),
]


def _run(tmp_path, text: str, *extra: str, name: str = "hostile.json"):
    f = tmp_path / name
    f.write_bytes(text.encode("utf-8", "surrogateescape"))
    return run_cli("reconstruct", "--config", f, "--image", "cat", "--quiet", "--no-cache", "--out", tmp_path / "o",
                   *extra)


def one_sentence(p, words: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr[-2000:]
    line = lines[0]
    assert line.startswith("vitrep: ") and line.endswith(".") and words in line, line
    return line


DRIVER = """
import contextlib, io, json, sys, traceback
from vitrep.cli import main
out = []
for args in json.load(open(sys.argv[1])):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            rc = main(args)
    except SystemExit as e:
        rc = e.code
    except BaseException:
        rc = 1
        err.write(traceback.format_exc())
    out.append([rc, err.getvalue()])
print(json.dumps(out))
"""


class Ran:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """Every hostile file through the command line's own entry point (``vitrep.cli.main``, what
    ``python -m vitrep`` calls), all in one fresh process: one torch import instead of one per file."""
    d = tmp_path_factory.mktemp("hostile")
    calls = []
    for i, (_, text, _) in enumerate(HOSTILE):
        f = d / f"hostile{i}.json"
        f.write_bytes(text.encode("utf-8", "surrogateescape"))
        calls.append(["reconstruct", "--config", str(f), "--image", "cat", "--quiet", "--no-cache",
                      "--out", str(d / f"o{i}")])
    (d / "calls.json").write_text(json.dumps(calls))
    p = subprocess.run([sys.executable, "-c", DRIVER, str(d / "calls.json")], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return d, [Ran(rc, err) for rc, err in json.loads(p.stdout.strip().splitlines()[-1])]


@pytest.mark.parametrize("i", range(len(HOSTILE)), ids=[h[0] for h in HOSTILE])
def test_a_hostile_config_is_one_sentence(hostile_runs, i):
    d, runs = hostile_runs
    line = one_sentence(runs[i], HOSTILE[i][2])
    assert not (d / f"o{i}").exists(), line  # nothing ran, nothing was written


def test_there_are_at_least_forty():
    assert len(HOSTILE) >= 40 and len({h[0] for h in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "folder", "missing"])
def test_a_config_that_is_no_regular_file_is_one_sentence(tmp_path, target):
    """``--config /dev/zero`` read forever (a MemoryError) and a FIFO hung; now: one sentence, at once."""
    import os

    if target == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif target == "folder":
        path = tmp_path
    elif target == "missing":
        path = tmp_path / "nothing.json"
    else:
        path = target
    p = subprocess.run([sys.executable, "-m", "vitrep", "reconstruct", "--config", str(path), "--image", "cat",
                        "--quiet", "--no-cache", "--out", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    one_sentence(p, "is not a config file")


def test_a_valid_config_still_runs_and_flags_override_it(tmp_path):
    """The same reader takes a good config, and a result.json (its ``config``) reruns as before."""
    p = _run(tmp_path, cfg(steps=3, clamp=True, init_mean=0.6))
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "o" / "result.json").read_text())
    assert doc["config"]["clamp"] is True and doc["config"]["init_mean"] == 0.6 and doc["steps"] == 3
    again = _run(tmp_path, (tmp_path / "o" / "result.json").read_text(), "--steps", "2", name="result.json")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["steps"] == 2
