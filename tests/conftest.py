"""Shared fixtures: small real models, the bundled cat, a fresh disk memo per test."""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

torch.set_num_threads(min(2, os.cpu_count() or 1))

from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.weights import build_model
from vitrep.models.registry import make_ref  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_homes(tmp_path, monkeypatch):
    """Every test gets its own memo and weights cache, so nothing leaks between tests or from the user."""
    monkeypatch.setenv("VITREP_CACHE_DIR", str(tmp_path / "memo"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_ref():
    """A 4-encoder ViT on 32x32 inputs: real torchvision VisionTransformer, fast enough for many steps."""
    return make_ref("vit_custom", patch=8, width=32, depth=4, heads=2, size=32)


@pytest.fixture(scope="session")
def cat32():
    return prepare(sample_path("cat"), 32)


@pytest.fixture(scope="session")
def cat224():
    return prepare(sample_path("cat"), 224)


@pytest.fixture(scope="session")
def vitb32_standin(tmp_path_factory):
    """A stand-in for trained ViT-B/32 weights: a real state_dict from another seed with a random head.

    Trained weights cannot be downloaded here, and torchvision zero-initialises
    ViT heads (untrained logits are all 0), so the head gets trained-like scale.
    The file is loaded through the same path a user's checkpoint takes.
    """
    m, _ = build_model(make_ref("vit_b_32", seed=7))
    torch.manual_seed(0)
    torch.nn.init.normal_(m.heads.head.weight, std=0.02)
    f = tmp_path_factory.mktemp("weights") / "vit_b_32_standin.pt"
    torch.save(m.state_dict(), f)
    return f


def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    """``python -m vitrep ARGS`` run in this process: the same :func:`vitrep.cli.main` a user's command runs,
    without paying for a new interpreter (and torch's import) per call.  ``env`` replaces the environment for
    the call.  An exception that escapes ``main`` fails the test (the user would have seen a traceback); the
    commands whose user path needs a process of its own (a kill, a hang, an entry point) keep subprocess."""
    from vitrep.cli import main

    out, err, saved = io.StringIO(), io.StringIO(), dict(os.environ)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors
                rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        if env is not None:
            os.environ.clear()
            os.environ.update(saved)
    return subprocess.CompletedProcess(["vitrep", *map(str, args)], rc, out.getvalue(), err.getvalue())


def assert_float32_close(actual, expected, products: int) -> None:
    """``actual`` equals ``expected`` up to float32 rounding through ``products`` matrix products in series.

    Two float32 computations of the same formula that sum in a different order (another kernel,
    a matrix product for a convolution, another torch's oneDNN) differ per product by a random walk
    of roundings: about one epsilon (1.19e-7) of the values' scale, in the worst element a few times
    that. Through ``products`` products in series the worst element stays within
    ``4 * products * eps * max|expected|``; a real error (a wrong line, a missing term) is orders of
    magnitude larger.
    """
    eps = torch.finfo(torch.float32).eps
    bound = 4 * products * eps * float(expected.abs().max())
    worst = float((actual - expected).abs().max())
    assert worst <= bound, f"max |difference| {worst:.3g} > {bound:.3g} ({products} products in series)"
