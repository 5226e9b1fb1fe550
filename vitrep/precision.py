"""The arithmetic a run's products use: ``fp32``, ``bf16``, ``tf32``, or ``auto`` (a faster one only where it was
measured to pay and to hold :func:`fidelity`, the one rule for every device).

``bf16`` (docs/performance.md, "Precision"): every linear layer's and convolution's product
in bfloat16 with float32 accumulation, on weights cast once per model and kept
beside it (:func:`vitrep.fast.linear.compute`); the image being optimised, the
loss, the blur, the optimizer state and every metric stay float32.  It runs on
the CPU fast path, on a CPU with native bf16 arithmetic (AMX or AVX-512 BF16):
elsewhere oneDNN emulates it, slower than float32.

``tf32`` lets a CUDA GPU with TF32 units (compute capability 8 or more)
run its float32 matrix products and convolutions in TF32; everything else is
as in fp32 (:func:`vitrep.descent.steps.float32`).

``auto`` resolves, when a config is validated, to ``bf16`` for a model whose
family adapter says ``auto_bf16`` on a CPU with AMX, to ``tf32`` on a GPU
that ``vitrep/precision_gpus.json`` lists as having held :func:`fidelity`
under TF32 (``benchmarks/gpu_precision.py`` measures it and says when to add
one), and to ``fp32`` everywhere else; the validated config (and so the
result and its memo key) records what ran.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Sequence

import torch

from .errors import ConfigError
from .fast import linear as fastops

PRECISIONS = ("fp32", "bf16", "tf32", "auto")

# The one fidelity rule for every device and precision (docs/performance.md, "One fidelity rule"), against full
# float32 on the same rows: every row's final PSNR within FIDELITY_PSNR_DB of float32's and its final SSIM within
# FIDELITY_SSIM, the same success (m_g < m_r) in every row, and, on a gallery figure, the same verdicts.  The PSNR
# bound is the one bf16 was admitted under; the SSIM bound was set with the rule, before any SSIM was measured
# under bf16 or TF32: half the smallest step a verdict reads on SSIM (5% of the lowest SSIM in the gallery, 0.4).
FIDELITY_PSNR_DB = 0.3
FIDELITY_SSIM = 0.01
GPUS_FILE = Path(__file__).with_name("precision_gpus.json")

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # either gives native bf16 products; auto asks for AMX


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16() -> bool:
    """Whether this CPU does bf16 products natively (AMX or AVX-512 BF16) and oneDNN runs them."""
    try:
        mkldnn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn = False
    return mkldnn and any(f in cpu_flags() for f in CPU_BF16_FLAGS)


def cpu_amx() -> bool:
    """Whether this CPU has AMX tiles for bf16 (where auto was measured to gain)."""
    return cpu_bf16() and "amx_bf16" in cpu_flags()


def machine() -> str:
    """The CPU's bf16 flags in words, for benchmarks and results."""
    flags = sorted(f for f in cpu_flags() if f.startswith("amx") or f.endswith("bf16"))
    return ", ".join(flags) or "no bf16 flags"


def fidelity(fp32_rows: Sequence[dict], rows: Sequence[dict], verdicts: Sequence = (),
             fp32_verdicts: Sequence = ()) -> dict:
    """The one fidelity rule on paired final rows (each with ``psnr``, ``ssim`` and ``success``) of float32 and of
    another precision, and, for a gallery figure, their verdicts: ``{"holds": ..., "max_abs_dpsnr": ...,
    "max_abs_dssim": ..., "same_success": ..., "same_verdicts": ...}``."""
    if len(fp32_rows) != len(rows) or not rows:
        raise ValueError("fidelity compares the same rows under both precisions")
    dpsnr = max(abs(b["psnr"] - a["psnr"]) for a, b in zip(fp32_rows, rows))
    dssim = max(abs(b["ssim"] - a["ssim"]) for a, b in zip(fp32_rows, rows))
    same_success = all(bool(a["success"]) == bool(b["success"]) for a, b in zip(fp32_rows, rows))
    same_verdicts = list(verdicts) == list(fp32_verdicts)
    return {"holds": dpsnr <= FIDELITY_PSNR_DB and dssim <= FIDELITY_SSIM and same_success and same_verdicts,
            "max_abs_dpsnr": dpsnr, "max_abs_dssim": dssim, "same_success": same_success,
            "same_verdicts": same_verdicts, "bounds": {"psnr_db": FIDELITY_PSNR_DB, "ssim": FIDELITY_SSIM}}


def cuda_tf32(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU with TF32 units (compute capability 8.0 or more: Ampere and newer)."""
    return (device.type == "cuda" and torch.cuda.is_available()
            and torch.cuda.get_device_capability(device)[0] >= 8)


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" and torch.cuda.is_available() else ""


@functools.lru_cache(maxsize=1)
def tf32_held() -> frozenset:
    """The GPU names on which TF32 was measured to hold :func:`fidelity` (``precision_gpus.json``)."""
    try:
        return frozenset(json.loads(GPUS_FILE.read_text()).get("tf32_holds", {}))
    except (OSError, ValueError):
        return frozenset()


def resolve(precision: str, auto_bf16: bool, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``tf32``: what a run on ``device`` asked to run in ``precision`` runs in;
    ``auto_bf16``: the model's family adapter has been measured to gain from bf16 and keep the fidelity bar (its
    ``auto_bf16``).

    ``bf16`` or ``tf32`` where it cannot run is one sentence (a ConfigError) naming the way out, ``auto``.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"Precision {precision!r} is not known; use fp32, bf16, tf32 or auto.")
    if precision == "fp32":
        return "fp32"
    if device.type == "cuda" and precision in ("tf32", "auto"):
        if precision == "auto":
            return "tf32" if cuda_tf32(device) and gpu_name(device) in tf32_held() else "fp32"
        if cuda_tf32(device):
            return "tf32"
    if precision == "tf32":
        where = (f"this GPU ({gpu_name(device)}) has no TF32 units" if device.type == "cuda" else
                 f"TF32 runs on CUDA GPUs of the Ampere generation or newer, not on the {device.type.upper()}")
        raise ConfigError(f"Precision tf32 cannot run here: {where}; precision auto runs fp32 on it.",
                          hints={"cli": " (--precision auto)", "dashboard": " (choose auto under Precision)"})
    usable = device.type == "cpu" and fastops.enabled() and cpu_bf16()
    if precision == "auto":
        return "bf16" if usable and auto_bf16 and cpu_amx() else "fp32"
    if usable:
        return "bf16"
    if device.type != "cpu":
        why = f"bf16 runs on the CPU only in this version, not on {device.type}"
    elif not fastops.enabled():
        why = "bf16 runs on the CPU fast path, which VITREP_FAST=0 (or a missing oneDNN) turns off"
    else:
        why = "this CPU has no native bf16 arithmetic (no AMX or AVX-512 BF16 among its flags)"
    raise ConfigError(f"Precision bf16 cannot run here: {why}; precision auto runs fp32 on it.",
                      hints={"cli": " (--precision auto)", "dashboard": " (choose auto under Precision)"})
