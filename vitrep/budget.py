"""The memory budget the engine keeps: models, their oneDNN packs, a batch's activations.

One number, ``VITREP_MEMORY_MB`` (megabytes of 2**20 bytes), bounds what the
engine itself holds in host memory: the cached CPU models (parameters and
buffers), the packed weights of :mod:`vitrep.fastops`, and the activations a
batch keeps for its backward pass.  The interpreter, torch's own libraries
and Streamlit come on top (about 0.65 GB for ``import torch`` with a CUDA
build of torch, less with a CPU build; see ``benchmarks/memory.py``).

- Unset: no budget on a machine with 4 GB or more (the models stay cached,
  as before); on a smaller machine (total memory, or the container's cgroup
  limit, under 4 GB) the budget is 1,800 MB or two thirds of the memory,
  whichever is less.  ``0``, ``none`` or ``unlimited`` switch it off.
- :func:`vitrep.models.load_model` keeps the cached models least recently
  used first and, before it builds a new model, evicts from that end until
  the new one fits (its estimate from :func:`model_bytes`).  A model alone
  over the budget is refused with :class:`MemoryBudgetError`.  Eviction
  drops the cache's reference and the model's packs; a computation that still
  holds the model keeps it alive until it ends.
- The packs get ``VITREP_FAST_BUDGET_MB`` if set, else half of the budget
  (:data:`PACK_SHARE`), else 3,072 MB with no budget.
- :func:`split_rows` splits a batch's rows into chunks whose activations fit
  in what the models leave of the budget; :func:`row_bytes` estimates one
  row's activations from its tap path.

Nothing here builds a real model: sizes come from a build on torch's
``meta`` device, which has shapes and no storage.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from .errors import ConfigError
from .models import LoadedModel, ModelRef

SMALL_MACHINE_MB = 4096  # below this much memory a budget is set by default
DEFAULT_SMALL_MB = 1800  # ... of this many MB (at most two thirds of the machine)
PACK_SHARE = 0.5  # the packs' share of the budget when VITREP_FAST_BUDGET_MB is not set
MB = 2 ** 20
_OFF = ("0", "none", "unlimited", "off", "inf")


class MemoryBudgetError(ConfigError):
    """A model (or batch) needs more memory than the budget this process keeps."""


# --- the budget -----------------------------------------------------------------------------------

def _read_int(path: str) -> Optional[int]:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


@functools.lru_cache(maxsize=1)
def machine_memory_mb() -> Optional[int]:
    """This machine's memory in MB: the least of ``MemTotal``, ``sysconf`` and a container's cgroup limit."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                found.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        v = _read_int(path)
        if v is not None and v < 2 ** 50:  # cgroup v1 writes a huge number for no limit
            found.append(v)
    return min(found) // MB if found else None


def default_budget_mb(total_mb: Optional[int]) -> Optional[int]:
    """The budget when ``VITREP_MEMORY_MB`` is unset: none at 4 GB and above, else 1,800 MB or 2/3 of the memory."""
    if total_mb is None or total_mb >= SMALL_MACHINE_MB:
        return None
    return min(DEFAULT_SMALL_MB, total_mb * 2 // 3)


def memory_budget_mb() -> Optional[int]:
    """The engine's memory budget in MB, or None for no limit (``VITREP_MEMORY_MB``, else the default)."""
    raw = os.environ.get("VITREP_MEMORY_MB", "").strip().lower()
    if not raw:
        return default_budget_mb(machine_memory_mb())
    if raw in _OFF:
        return None
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not mb > 0:
        raise ConfigError(f"VITREP_MEMORY_MB must be a number of megabytes or 'unlimited', not {raw!r}.")
    return max(1, int(mb))


def memory_budget_bytes() -> Optional[int]:
    mb = memory_budget_mb()
    return None if mb is None else mb * MB


def public_mode() -> bool:
    """True when ``VITREP_PUBLIC`` is 1/true/yes/on (the dashboard also reads Streamlit secrets itself)."""
    return os.environ.get("VITREP_PUBLIC", "").strip().lower() in ("1", "true", "yes", "on")


def gb(nbytes: float) -> str:
    """``1.8 GB`` for 1,800 MB (MB of 2**20 bytes, GB of 1,000 MB, as the budget is given)."""
    mb = nbytes / MB
    return f"{mb / 1000:.1f} GB" if mb >= 950 else f"{mb:.0f} MB"


def release() -> None:
    """Give freed memory back: collect reference cycles (they can hold a step's tensors), then trim
    glibc's heap.  The model cache calls this before it builds a model under a budget, and
    :func:`split_rows` before a batch; it costs a few tens of milliseconds."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# --- model sizes without building -----------------------------------------------------------------

def _meta_module(ref: ModelRef) -> torch.nn.Module:
    """The architecture on the ``meta`` device: shapes only, no storage, no initialisation work."""
    with torch.device("meta"):
        return ref.spec.builder(**ref.adapter.builder_kwargs(ref)).eval().requires_grad_(False)


def _shape_key(ref: ModelRef) -> tuple:
    """What the size depends on: the architecture, not the weights, seed or swaps."""
    return ref.name, tuple(sorted(ref.arch().items())), ref.input_size


_SIZES: dict[tuple, tuple[int, int]] = {}
_ROWS: dict[tuple, int] = {}


def _sizes(ref: ModelRef) -> tuple[int, int]:
    """(parameter + buffer bytes, bytes that fastops would pack) of ``ref``'s architecture (memoised)."""
    key = _shape_key(ref)
    if key not in _SIZES:
        _SIZES[key] = _count_sizes(ref)
    return _SIZES[key]


def _count_sizes(ref: ModelRef) -> tuple[int, int]:
    m = _meta_module(ref)
    own = sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers()))
    return own, ref.adapter.packable_bytes(m)


def param_bytes(ref: ModelRef) -> int:
    """Bytes of ``ref``'s parameters and buffers (float32), from a meta-device build."""
    return _sizes(ref)[0]


def model_bytes(ref: ModelRef, fast: Optional[bool] = None) -> int:
    """What ``ref`` holds once loaded and used: parameters, buffers and its oneDNN packs.

    ``fast`` (default: whether the packed path is on and models run on the
    CPU) adds the packs, two copies (``W`` and ``W^T``) of every weight the
    path packs, up to the pack budget.  No real model is built.
    """
    from . import fastops
    from .models import resolve_device

    own, packable = _sizes(ref)
    if fast is None:
        fast = fastops.enabled() and resolve_device("auto").type == "cpu"
    return own + (min(2 * packable, fastops.budget_bytes()) if fast else 0)


_LABELS = {"vit_b_32": "ViT-B/32", "vit_b_16": "ViT-B/16", "vit_l_16": "ViT-L/16", "vit_l_16_512": "ViT-L/16 at 512 px",
           "vit_l_32": "ViT-L/32", "vit_h_14": "ViT-H/14", "vit_h_14_518": "ViT-H/14 at 518 px",
           "resnet50": "ResNet-50", "mixer_b16": "MLP-Mixer B/16"}


def short_name(ref: ModelRef) -> str:
    """``ViT-H/14``; configurable models with their architecture, ``mixer (patch 16, width 1024, depth 8)``."""
    if ref.name in _LABELS and ref.size in (None, ref.spec.size):
        return _LABELS[ref.name]
    arch = ref.arch() or {"size": ref.input_size}
    return f"{_LABELS.get(ref.name, ref.name)} ({', '.join(f'{k} {v}' for k, v in arch.items())})"


def too_big(ref: ModelRef, need: int, limit: int) -> str:
    return f"{short_name(ref)} needs about {gb(need)}, more than this server's {gb(limit)} budget"


def model_fits(ref: ModelRef) -> tuple[bool, str]:
    """Whether ``ref`` fits the memory budget; when not, the reason in one sentence.

    ``(False, "ViT-H/14 needs about 3.4 GB, more than this server's 1.8 GB budget.")``
    """
    limit = memory_budget_bytes()
    if limit is None:
        return True, ""
    need = model_bytes(ref)
    if need <= limit:
        return True, ""
    return False, too_big(ref, need, limit) + "."


# --- activations ----------------------------------------------------------------------------------

TRANSIENT_FACTOR = 4  # the backward's working gradients: a few tensors the size of the largest activation


def _count_row_bytes(ref: ModelRef, tap: str, pos_embed: bool, normalize: bool) -> int:
    from .taps import run_paths, tap_path

    m = _meta_module(ref)
    held = {t.untyped_storage()._cdata for t in list(m.parameters()) + list(m.buffers())}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s._cdata not in held:  # weights saved for the input's gradient are the model's, not the row's
            saved[s._cdata] = s.nbytes()
        return t

    lm = LoadedModel(ref, m, "meta", torch.device("meta"))
    size = ref.input_size
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
        x = torch.empty(1, 3, size, size, device="meta", requires_grad=True)
        (out,) = run_paths(x, [tap_path(lm, tap, pos_embed=pos_embed, normalize=normalize)])
    image = 3 * size * size * 4
    largest = max([out.numel() * 4, image, *saved.values()])
    # the image, its gradient, the blurred step and the target: a handful of image-sized tensors
    return sum(saved.values()) + TRANSIENT_FACTOR * largest + 6 * image + 2 * out.numel() * 4


def row_bytes(ref: ModelRef | LoadedModel, tap: str, pos_embed: bool = True, normalize: bool = False) -> int:
    """Estimated activation bytes of one batch row reconstructing from ``tap`` (canonical, e.g. ``encoder-12``).

    The estimate runs the tap's path on a meta-device model (shapes only)
    under autograd and sums what autograd saves for the backward pass, less
    the model's own weights; plus :data:`TRANSIENT_FACTOR` times the largest
    of those (the backward's working gradients) and a few image-sized tensors
    (the image, its gradient, the blurred step, the target).  Surgery is left
    out (removing parts saves less).  ViT-B/32 encoder 12: about 23 MB;
    ResNet-50 layer4 at 224 px: about 95 MB.
    """
    if isinstance(ref, LoadedModel):
        ref = ref.ref
    key = (_shape_key(ref), tap, bool(pos_embed), bool(normalize))
    if key not in _ROWS:
        _ROWS[key] = _count_row_bytes(ref, tap, bool(pos_embed), bool(normalize))
    return _ROWS[key]


def split_rows(rows: list[int], per_row_bytes: int | Sequence[int], model: Optional[ModelRef] = None) -> list[list[int]]:
    """``rows`` in order, cut into chunks whose activations fit what the cached models leave of the budget.

    ``per_row_bytes`` is one number for every row or one per row (e.g.
    :func:`row_bytes` of each row's tap).  ``model``: the batch's model, if
    it may not be loaded yet (its :func:`model_bytes` is reserved).  With no
    budget, one chunk; a row larger than what is left still runs, alone.
    Under a budget it first calls :func:`release`.
    """
    from .models import cache_bytes, is_cached

    rows = list(rows)
    if not rows:
        return []
    limit = memory_budget_bytes()
    if limit is None:
        return [rows]
    release()  # the previous batch's leftovers go before this one starts
    sizes = [int(per_row_bytes)] * len(rows) if isinstance(per_row_bytes, (int, float)) else [int(b) for b in per_row_bytes]
    if len(sizes) != len(rows):
        raise ValueError(f"{len(sizes)} sizes for {len(rows)} rows")
    room = limit - cache_bytes() - (model_bytes(model) if model is not None and not is_cached(model) else 0)
    chunks, chunk, used = [], [], 0
    for r, b in zip(rows, sizes):
        if chunk and used + b > room:
            chunks.append(chunk)
            chunk, used = [], 0
        chunk.append(r)
        used += b
    chunks.append(chunk)
    return chunks
