"""Shared fixtures: small real models, the bundled cat, a fresh disk memo per test."""

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

torch.set_num_threads(min(2, os.cpu_count() or 1))

from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models import make_ref  # noqa: E402


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
