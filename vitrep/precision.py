"""The arithmetic a run's products use: ``fp32``, ``bf16``, or ``auto`` (bf16 only where it was measured to pay).

``bf16`` (docs/precision.md): every linear layer's and convolution's product
in bfloat16 with float32 accumulation, on weights cast once per model and kept
beside it (:func:`vitrep.fast.linear.compute`); the image being optimised, the
loss, the blur, the optimizer state and every metric stay float32.  It runs on
the CPU fast path, on a CPU with native bf16 arithmetic (AMX or AVX-512 BF16):
elsewhere oneDNN emulates it, slower than float32.

``auto`` resolves, when a config is validated, to ``bf16`` for a model whose
family adapter says ``auto_bf16`` on a CPU with AMX, and to ``fp32`` everywhere else; the
validated config (and so the result and its memo key) records what ran.
"""

from __future__ import annotations

import functools

import torch

from .errors import ConfigError
from .fast import linear as fastops

PRECISIONS = ("fp32", "bf16", "auto")

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


def resolve(precision: str, auto_bf16: bool, device: torch.device) -> str:
    """``fp32`` or ``bf16``: what a run on ``device`` asked to run in ``precision`` runs in; ``auto_bf16``: the
    model's family adapter has been measured to gain from bf16 and keep the fidelity bar (its ``auto_bf16``).

    ``bf16`` where it cannot run is one sentence (a ConfigError) naming the way out, ``auto``.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"Precision {precision!r} is not known; use fp32, bf16 or auto.")
    if precision == "fp32":
        return "fp32"
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
