"""The numbers a server lives by, read from the environment: public mode, the memory budget, public limits.

A leaf module (it imports nothing from vitrep but :mod:`vitrep.errors`), read
by the engine, which enforces these limits (config validation:
:func:`vitrep.config.validate`, :func:`vitrep.models.registry.check_ref`,
:func:`vitrep.generate.make_generate_config`; the row check of
:mod:`vitrep.models.sizes`), and by the dashboard, which draws its widgets from the
same numbers.  ``docs/security.md`` says what each limit defends against.

- **Public mode** (:func:`public_mode`): ``VITREP_PUBLIC`` is 1/true/yes/on, a
  server open to strangers.  (The dashboard also reads Streamlit's secrets and
  puts the answer into the environment, so the engine sees the same mode.)
- **The memory budget** (:func:`memory_budget_mb`), megabytes of 2**20 bytes
  the engine itself may hold (cached models, their oneDNN packs, a batch's
  activations): ``VITREP_MEMORY_MB``; ``0``, ``none`` or ``unlimited`` switch
  it off, except in public mode, which always keeps one.  Unset: in public
  mode, and on a machine (or container) under 4 GB, 1,800 MB or two thirds of
  the memory, whichever is less; otherwise none.
- **Public limits**: at most :data:`PUBLIC_MAX_STEPS` steps a run, images of
  :data:`PUBLIC_IMAGE_MB`, checkpoints of :data:`PUBLIC_CHECKPOINT_MB` (uploads
  only: weights and swap sources must lie inside :func:`upload_root`),
  :data:`PUBLIC_QUEUE_LIMIT` runs waiting for the device, and configurable
  architectures no larger than the registry's defaults (:func:`arch_bounds`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
import tempfile
from pathlib import Path
from typing import Optional

from .errors import ConfigError

MB = 2 ** 20
_TRUE = ("1", "true", "yes", "on")
_OFF = ("0", "none", "unlimited", "off", "inf")

SMALL_MACHINE_MB = 4096  # below this much memory a memory budget is set by default
DEFAULT_SMALL_MB = 1800  # ... of this many MB (at most two thirds of the machine); public mode: always

PUBLIC_MAX_STEPS = 1000  # most steps a public server runs for one reconstruction or class image
PUBLIC_IMAGE_MB = 8  # largest image a public server takes
PUBLIC_CHECKPOINT_MB = 100  # largest checkpoint upload a public server takes (Streamlit's maxUploadSize matches)
PUBLIC_QUEUE_LIMIT = 8  # runs a public server lets wait for its device; the next is refused with one sentence

# Bounds of every mode: a value outside them is a mistake (or an attack), not a bigger run.
MAX_STEPS = 10_000_000
MAX_SEED = 2 ** 63 - 1  # torch's generators take 64-bit seeds
MAX_ARCH = {"patch": 1024, "width": 65_536, "depth": 1024, "heads": 1024, "size": 8192}


_DESCRIBING = contextvars.ContextVar("vitrep_describing", default=False)


def public_mode() -> bool:
    """True when ``VITREP_PUBLIC`` is 1/true/yes/on: a server open to strangers (not inside :func:`describing`)."""
    return not _DESCRIBING.get() and os.environ.get("VITREP_PUBLIC", "").strip().lower() in _TRUE


@contextlib.contextmanager
def describing():
    """Configs built only to be compared or described, never run (a gallery entry's panels against today's
    figure): public limits do not apply inside.  Per thread and task, so other sessions are not touched."""
    token = _DESCRIBING.set(True)
    try:
        yield
    finally:
        _DESCRIBING.reset(token)


# --- the memory budget ----------------------------------------------------------------------------

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


def default_budget_mb(total_mb: Optional[int], public: bool = False) -> Optional[int]:
    """The memory budget when ``VITREP_MEMORY_MB`` is unset: 1,800 MB or 2/3 of the memory, whichever is less, in
    public mode or on a machine under 4 GB; else none."""
    if total_mb is None:
        return DEFAULT_SMALL_MB if public else None
    if total_mb >= SMALL_MACHINE_MB and not public:
        return None
    return min(DEFAULT_SMALL_MB, total_mb * 2 // 3)


def memory_budget_mb() -> Optional[int]:
    """The engine's memory budget in MB, or None for no limit (``VITREP_MEMORY_MB``, else the default)."""
    public = public_mode()
    raw = os.environ.get("VITREP_MEMORY_MB", "").strip().lower()
    if not raw:
        return default_budget_mb(machine_memory_mb(), public)
    if raw in _OFF:
        if public:
            raise ConfigError(f"A public server always keeps a memory budget, so VITREP_MEMORY_MB must be a number "
                              f"of megabytes there, not {raw!r}.")
        return None
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not (mb > 0 and math.isfinite(mb)):
        raise ConfigError(f"VITREP_MEMORY_MB must be a number of megabytes or 'unlimited', not {raw!r}.")
    return max(1, int(mb))


def memory_budget_bytes() -> Optional[int]:
    mb = memory_budget_mb()
    return None if mb is None else mb * MB


# --- public limits --------------------------------------------------------------------------------

def max_steps() -> int:
    """The most steps one run may take here: :data:`PUBLIC_MAX_STEPS` in public mode, else :data:`MAX_STEPS`."""
    return PUBLIC_MAX_STEPS if public_mode() else MAX_STEPS


def queue_limit() -> Optional[int]:
    """How many runs may wait for the device before the next is refused (None: no limit)."""
    return PUBLIC_QUEUE_LIMIT if public_mode() else None


def image_limit_bytes() -> Optional[int]:
    """The largest image file taken here: :data:`PUBLIC_IMAGE_MB` in public mode (None: the loader's own limit)."""
    return PUBLIC_IMAGE_MB * MB if public_mode() else None


def arch_bounds(defaults: dict) -> dict[str, tuple[int, int]]:
    """``{option: (least, most)}`` for a configurable architecture whose registry defaults are ``defaults``.

    Every mode: 1 to :data:`MAX_ARCH`.  Public mode: width, depth, heads and
    input size at most the default; the patch at least half the default (at
    the default size, at most four times the default's tokens: the paper's
    patch-8 Mixer of figure 16 stays, a patch-4 one, 16 times the work, does
    not).  ``defaults`` may be empty (a fixed architecture) or hold only
    ``size`` (a model that takes any input size: at most its own size).
    """
    out = {k: (1, MAX_ARCH[k]) for k in defaults}
    if not public_mode():
        return out
    for k, v in defaults.items():
        out[k] = (max(1, -(-int(v) // 2)), MAX_ARCH[k]) if k == "patch" else (1, min(int(v), MAX_ARCH[k]))
    return out


def upload_root() -> Path:
    """Where uploaded checkpoints live (``VITREP_UPLOAD_DIR``, else ``<tmp>/vitrep-checkpoints``); in public
    mode weights and swap sources must be files inside it."""
    raw = os.environ.get("VITREP_UPLOAD_DIR", "").strip()
    return Path(raw).expanduser() if raw else Path(tempfile.gettempdir()) / "vitrep-checkpoints"


def inside_upload_root(path: str | os.PathLike) -> bool:
    """Whether ``path``, with every symlink and ``..`` resolved, lies inside :func:`upload_root`."""
    try:
        real = Path(path).expanduser().resolve(strict=True)
        root = upload_root().resolve()
    except (OSError, RuntimeError):  # missing, a symlink loop
        return False
    return real != root and real.is_relative_to(root)


# --- the oneDNN packs' share ----------------------------------------------------------------------

PACK_SHARE = 0.5  # the packs' share of the memory budget when VITREP_FAST_BUDGET_MB is not set
DEFAULT_PACK_MB = 3072  # ... and their limit with no memory budget


def pack_limit_bytes() -> int:
    """Bytes the CPU fast path's packed weights may hold (:mod:`vitrep.fast.linear`): ``VITREP_FAST_BUDGET_MB``,
    else :data:`PACK_SHARE` of the memory budget, else 3,072 MB."""
    raw = os.environ.get("VITREP_FAST_BUDGET_MB", "").strip()
    if raw:
        try:
            return int(float(raw) * MB)
        except ValueError:
            raise ConfigError(f"VITREP_FAST_BUDGET_MB must be a number of megabytes, not {raw!r}.") from None
    mb = memory_budget_mb()
    return int((DEFAULT_PACK_MB if mb is None else mb * PACK_SHARE) * MB)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows, else ``unrecorded``: named with
    every timing and every gallery entry."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unrecorded"
