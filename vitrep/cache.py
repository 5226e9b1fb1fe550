"""The disk memo: every finished run remembered, keyed explicitly.

A key is the SHA-256 of a JSON document holding the cache version, the kind
of result, the image's content hash, the full config (device resolved) and
the weights identity (seed, trained file name or checkpoint content hash).
Values are bytes (npz + JSON, see ``Result.to_bytes``), never pickles, so a
damaged entry is detected on read, dropped and recomputed.

:meth:`Memo.get_or_compute` also makes concurrent identical requests in one
process (several dashboard sessions) compute once: the first caller computes,
the others wait for it and read its result.  ``computations`` counts the runs
actually computed, so this can be seen and tested.

The memo is bounded on disk (``Memo.size_limit``, bytes): ``size_limit_mb``,
else ``$VITREP_MEMO_MB``, else 4 GiB (1 GiB with ``VITREP_PUBLIC=1``).
Beyond it diskcache drops the least recently used entries (a read counts as a
use), so ``volume()`` stays at or under the limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

import logging

import diskcache
import numpy as np

CACHE_VERSION = 2  # 2: optimiser, back-off
DEFAULT_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitrep"
SIZE_LIMIT = 4 * 2**30  # the default bound on disk
PUBLIC_SIZE_LIMIT = 2**30  # ... in public mode (VITREP_PUBLIC=1): a shared demo server's disk is small
EVICTION_POLICY = "least-recently-used"  # a result read often (a preset, the home page's example) stays
CULL_LIMIT = 1  # entries diskcache drops per write once over the limit (its default, 10, can empty a small memo)

T = TypeVar("T")
log = logging.getLogger("vitrep")


def cache_dir(explicit: Optional[str | os.PathLike] = None) -> Path:
    """``explicit``, else ``$VITREP_CACHE_DIR``, else ``~/.cache/vitrep``."""
    return Path(explicit or os.environ.get("VITREP_CACHE_DIR") or DEFAULT_DIR).expanduser()


def memo_limit_bytes(size_limit_mb: Optional[float] = None) -> int:
    """The memo's bound on disk: ``size_limit_mb``, else ``$VITREP_MEMO_MB``, else 4 GiB (1 GiB in public mode)."""
    from .errors import ConfigError

    raw = size_limit_mb if size_limit_mb is not None else os.environ.get("VITREP_MEMO_MB", "").strip()
    if raw in ("", None):
        from .limits import public_mode

        return PUBLIC_SIZE_LIMIT if public_mode() else SIZE_LIMIT
    try:
        mb = float(raw)
    except (TypeError, ValueError):
        mb = -1.0
    if not mb > 0:
        raise ConfigError(f"The memo's size limit (VITREP_MEMO_MB) must be a positive number of megabytes, not {raw!r}.")
    return int(mb * 2**20)


def make_key(kind: str, **parts) -> str:
    """An explicit, stable key: the hash of sorted JSON of everything that determines the result."""
    doc = json.dumps({"cache_version": CACHE_VERSION, "kind": kind, **parts}, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(doc.encode()).hexdigest()}"


def pack(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """JSON metadata plus named numpy arrays as one compressed npz blob (no pickle)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def unpack(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of :func:`pack`; raises on damaged data (the memo then recomputes)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes().decode())
        return meta, {k: z[k] for k in z.files if k != "__meta__"}


class Memo:
    """A diskcache-backed memo of result bytes with single-flight computation."""

    def __init__(self, directory: Optional[str | os.PathLike] = None, size_limit_mb: Optional[float] = None) -> None:
        self.directory = cache_dir(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.size_limit = memo_limit_bytes(size_limit_mb)  # bytes on disk; the least recently used go first
        self._cache = diskcache.Cache(str(self.directory), size_limit=self.size_limit, cull_limit=CULL_LIMIT,
                                      eviction_policy=EVICTION_POLICY)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.computations = 0
        self.hits = 0
        self.waiting: set[str] = set()  # keys whose computation is under way

    def get(self, key: str, decode: Callable[[bytes], T]) -> Optional[T]:
        """The decoded value, or None when absent or unreadable (a damaged entry is deleted)."""
        try:
            data = self._cache.get(key)
        except Exception:
            data = None
            self._discard(key)
        if data is None:
            return None
        try:
            value = decode(data)
        except Exception:
            self._discard(key)
            return None
        self.hits += 1
        return value

    def put(self, key: str, data: bytes) -> None:
        """Store ``data``; beyond :attr:`size_limit` the least recently used entries are dropped."""
        try:
            self._cache.set(key, data)  # diskcache culls the least recently used entry when over the limit
            self._trim()
        except Exception:  # a full or read-only disk loses the memo, not the result
            pass

    def _trim(self) -> None:
        """Cull one least recently used entry at a time until the volume is under the limit.

        diskcache culls ``cull_limit`` entries per write, which is not enough
        after a large entry, and its ``cull()`` drops ten at a time, which can
        empty a small memo, the newest entry included.  This runs diskcache's
        own policy step (``_cull``, one entry) until the memo fits; the entry
        just written is the most recently used, so it goes last, and only
        when it alone is over the limit.
        """
        c = self._cache
        n = len(c)
        while n and c.volume() > self.size_limit:
            try:
                with c._transact(retry=True) as (sql, cleanup):
                    c._cull(time.time(), sql, cleanup, limit=1)
            except AttributeError:  # a diskcache without these internals: its public, coarser cull
                c.cull(retry=True)
                return
            n, before = len(c), n
            if n >= before:  # nothing was culled (another writer, or no policy): leave it to diskcache
                return

    def _discard(self, key: str) -> None:
        try:
            self._cache.delete(key)
        except Exception:
            pass

    def get_or_compute(self, key: str, compute: Callable[[], T], encode: Callable[[T], bytes],
                       decode: Callable[[bytes], T], keep: Callable[[T], bool] = lambda v: True) -> T:
        """Return the memoised value or compute it once, even when asked for concurrently."""
        hit = self.get(key, decode)
        if hit is not None:
            return hit
        with self.flight(key):
            self.waiting.add(key)
            hit = self.get(key, decode)  # another caller may have finished while we waited
            if hit is not None:
                return hit
            self.computations += 1
            log.info("computing %s (computation %d in this process)", key[:24], self.computations)
            try:
                value = compute()
            except BaseException:  # an error, or a dashboard session that went away mid-run: nothing is kept
                log.info("abandoned %s", key[:24])
                raise
            finally:
                self.waiting.discard(key)
            if keep(value):
                self.put(key, encode(value))
            return value

    def get_or_compute_many(self, keys: list[str], compute: Callable[[list[int]], list[T]],
                            encode: Callable[[T], bytes], decode: Callable[[bytes], T],
                            keep: Callable[[T], bool] = lambda v: True) -> list[T]:
        """Values for ``keys``: those in the memo read, the others computed together, once.

        ``compute(indices)`` returns the values of ``keys[i]`` for ``i`` in
        ``indices`` (the misses), in order.  Single flight over the set: a
        second caller asking for the same keys at once waits, then reads
        them.  Values that ``keep`` refuses (a stopped run) are returned but
        not remembered.
        """
        out: list = [None] * len(keys)
        with self.flight(make_key("batch", keys=list(keys))):
            todo = []
            for i, k in enumerate(keys):
                out[i] = self.get(k, decode)
                if out[i] is None:
                    todo.append(i)
            if not todo:
                return out
            self.announce(keys[i] for i in todo)
            try:
                values = compute(todo)
            finally:
                self.settle(keys[i] for i in todo)
            for i, v in zip(todo, values):
                out[i] = v
                if keep(v):
                    self.store(keys[i], encode(v))
        return out

    def announce(self, keys) -> None:
        """``keys`` are being computed (elsewhere too: a Ray worker); :meth:`busy` says so until :meth:`settle`."""
        self.waiting.update(keys)

    def settle(self, keys) -> None:
        self.waiting.difference_update(keys)

    def store(self, key: str, data: bytes) -> None:
        """Remember a value computed elsewhere (a Ray worker's result): stored, and counted as a computation."""
        self.put(key, data)
        self.computations += 1

    @contextlib.contextmanager
    def flight(self, key: str):
        """Hold ``key``'s single-flight lock: one computation of it at a time in this process."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def busy(self, key: str) -> bool:
        """Is this key being computed right now (by another caller)?"""
        return key in self.waiting

    def volume(self) -> int:
        """Bytes on disk."""
        try:
            return int(self._cache.volume())
        except Exception:
            return 0

    def __len__(self) -> int:
        return len(self._cache)

    def __bool__(self) -> bool:  # an empty memo is still a memo (``if memo:`` must not test emptiness)
        return True

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        self._cache.close()


_MEMOS: dict[Path, Memo] = {}
_MEMOS_LOCK = threading.Lock()


def get_memo(directory: Optional[str | os.PathLike] = None) -> Memo:
    """One shared :class:`Memo` per directory per process."""
    d = cache_dir(directory)
    with _MEMOS_LOCK:
        if d not in _MEMOS:
            _MEMOS[d] = Memo(d)
        return _MEMOS[d]
