"""What the benchmark scripts beside this file share: where their outputs go, and the machine each names.

Every script writes into ``benchmarks/results/`` (:data:`RESULTS`; its README
says which script and command made each file), and every result names the
machine it came from (:func:`machine`): the CPU's model name, its bf16/AMX
flags, cores and threads, torch and Python, and the GPU where one ran.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

from vitrep.limits import cpu_model  # noqa: F401 (named here for the scripts)

RESULTS = Path(__file__).resolve().parent / "results"


def machine(device: Optional[str] = None) -> dict:
    """The machine a result comes from; ``device`` a CUDA device names its GPU too."""
    import torch

    from vitrep.precision import machine as bf16_flags

    out = {"cpu": cpu_model(), "cpu_flags": bf16_flags(), "cores": os.cpu_count(),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    if device is not None and str(device).startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out


def describe(m: dict) -> str:
    """One line for a script's console output and text files."""
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    return (f"machine: {m['cpu']} ({m['cpu_flags']}), {m['cores']} cores, {m['threads']} threads, "
            f"torch {m['torch']}{gpu}")


def result_path(name: str) -> Path:
    """``benchmarks/results/NAME``, the folder made if need be."""
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / name
