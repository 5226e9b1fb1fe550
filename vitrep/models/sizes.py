"""The memory budget the engine keeps: models, their oneDNN packs, a batch's activations.

One number, ``VITREP_MEMORY_MB`` (megabytes of 2**20 bytes; read by
:func:`vitrep.limits.memory_budget_mb`), bounds what the engine itself holds
in host memory: the cached CPU models (parameters and buffers), the packed
weights of :mod:`vitrep.fast.linear`, and the activations a batch keeps for its
backward pass.  The interpreter, torch's own libraries and Streamlit come on
top (about 0.65 GB for ``import torch`` with a CUDA build of torch, less with
a CPU build; see ``benchmarks/memory.py``).  This module holds the estimates
the budget is kept with:

- :func:`vitrep.models.pool.load_model` keeps the cached models least recently
  used first and, before it builds a new model, evicts from that end until
  the new one fits (its estimate from :func:`model_bytes`).  A model alone
  over the budget is refused with :class:`MemoryBudgetError`.  Eviction
  drops the cache's reference and the model's packs; a computation that still
  holds the model keeps it alive until it ends.
- The packs get ``VITREP_FAST_BUDGET_MB`` if set, else half of the budget
  (:data:`vitrep.limits.PACK_SHARE`), else 3,072 MB with no budget.
- :func:`split_rows` splits a batch's rows into chunks whose activations fit
  in what the models leave of the budget; :func:`row_bytes` estimates one
  row's activations from its tap path.
- :func:`check_row` refuses, with one sentence and before any work, a row
  whose activations and model together exceed the budget (with no budget:
  the machine's memory, or the GPU's), in every mode: such a row could never
  run.

Nothing here builds a real model: sizes come from a build on torch's
``meta`` device, which has shapes and no storage.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import limits
from ..errors import ConfigError
from .weights import LoadedModel
from .registry import ModelRef

MB = limits.MB


class MemoryBudgetError(ConfigError):
    """A model (or batch) needs more memory than the budget this process keeps."""


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


def model_bytes(ref: ModelRef, fast: Optional[bool] = None, bf16: bool = False) -> int:
    """What ``ref`` holds once loaded and used: parameters, buffers and its oneDNN packs.

    ``fast`` (default: whether the packed path is on and models run on the
    CPU) adds the packs, two copies (``W`` and ``W^T``) of every weight the
    path packs, up to the pack budget; ``bf16`` (the model also runs in bf16)
    adds its bf16 packs (``W`` and ``W^T``), the bytes of one float32 copy.  No real model is built.
    """
    from ..fast import linear as fastops
    from .registry import resolve_device

    own, packable = _sizes(ref)
    if fast is None:
        fast = fastops.enabled() and resolve_device("auto").type == "cpu"
    return own + (min(2 * packable + (packable if bf16 else 0), limits.pack_limit_bytes()) if fast else 0)


def short_name(ref: ModelRef) -> str:
    """``ViT-H/14``; configurable models with their architecture, ``mixer (patch 16, width 1024, depth 8)``."""
    spec = ref.spec
    if not spec.configurable and ref.size in (None, spec.size):
        return spec.display
    arch = ref.arch() or {"size": ref.input_size}
    name = ref.name if spec.configurable else spec.display  # a configurable model: the name the user gave
    return f"{name} ({', '.join(f'{k} {v}' for k, v in arch.items())})"


def too_big(ref: ModelRef, need: int, limit: int) -> str:
    return f"{short_name(ref)} needs about {gb(need)}, more than this server's {gb(limit)} memory budget"


def model_fits(ref: ModelRef) -> tuple[bool, str]:
    """Whether ``ref`` fits the memory budget; when not, the reason in one sentence.

    ``(False, "ViT-H/14 needs about 3.4 GB, more than this server's 1.8 GB memory budget.")``
    """
    limit = limits.memory_budget_bytes()
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


def row_limit(device: str = "auto") -> tuple[Optional[int], str]:
    """The most one row and its model may take on ``device``, and what that limit is, in words.

    A CPU row: the memory budget, else the machine's memory; a GPU row: the
    GPU's memory (the memory budget counts host memory).  ``(None, "")`` when
    nothing is known.
    """
    from .registry import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        total = torch.cuda.get_device_properties(dev).total_memory
        return total, f"this GPU's {gb(total)} of memory"
    limit = limits.memory_budget_bytes()
    if limit is not None:
        return limit, f"this server's {gb(limit)} memory budget"
    total = limits.machine_memory_mb()
    return (None, "") if total is None else (total * MB, f"this machine's {gb(total * MB)} of memory")


def check_row(config) -> None:
    """Refuse, with one sentence and before any work, a row that could never run: its activations
    (:func:`row_bytes`) and its model (:func:`model_bytes`) together over :func:`row_limit`.

    Every mode: under a memory budget that budget, without one the machine's memory.
    ``config`` is a validated :class:`vitrep.config.ReconstructConfig`.
    """
    from ..fast import linear as fastops
    from .registry import resolve_device

    limit, what = row_limit(config.device)
    if limit is None:
        return
    on_cpu = resolve_device(config.device).type == "cpu"
    need = row_bytes(config.model, config.tap, config.pos_embed, config.normalize) + \
        model_bytes(config.model, fast=on_cpu and fastops.enabled())
    if need > limit:
        raise MemoryBudgetError(f"{short_name(config.model)} reconstructing from {config.tap} needs about {gb(need)} "
                                f"for one image, more than {what}; choose a smaller architecture or an earlier layer.")


