"""The disk memo: every finished run remembered, keyed explicitly.

A key is the SHA-256 of a JSON document holding the cache version, the kind
of result, the image's content hash, the full config (device resolved) and
the weights identity (seed, trained file name or checkpoint content hash).
Values are bytes (npz + JSON, see ``Result.to_bytes``), never pickles, stored
with a SHA-256 checksum (:func:`.memo_disk.seal`): a damaged or altered entry, even one
that still decodes, is detected on read, dropped and recomputed, and the
memo's other entries stay.

The memo opens defensively: a damaged database (overwritten, truncated, a
page zeroed: ``PRAGMA quick_check`` fails, or sqlite says it is no database)
or a memo path that is a file is moved aside (``<folder>.damaged-<time>``),
a fresh memo is opened in its place and one warning is logged; the run goes
on.  Damage found later, while the memo is in use, is recovered from the
same way.

:meth:`Memo.get_or_compute` also makes concurrent identical requests in one
process (several dashboard sessions) compute once: the first caller computes,
the others wait for it and read its result.  ``computations`` counts the runs
actually computed, so this can be seen and tested.

The memo is bounded on disk (``Memo.size_limit``, bytes): ``size_limit_mb``,
else ``$VITREP_MEMO_MB``, else 4 GiB (1 GiB with ``VITREP_PUBLIC=1``).
Beyond it diskcache drops the least recently used entries (a read counts as a
use), so ``volume()`` stays at or under the limit.  What happens on disk (the
folder, the bound, the seal, moving damage aside) is :mod:`.memo_disk`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Optional, TypeVar

import diskcache

from .memo_disk import (CULL_LIMIT, EVICTION_POLICY, cache_dir, damaged, memo_limit_bytes, move_aside, quick_check,
                        seal, trim, unseal)

CACHE_VERSION = 4  # 2: optimiser, back-off; 3: values sealed with a checksum; 4: curves carry SSIM (older
# entries are never read)

T = TypeVar("T")
log = logging.getLogger("vitrep")


def torch_release() -> str:
    """torch's major.minor, which the memo keys of computed results carry: a patch release reuses the memo,
    another minor release computes afresh (its kernels may round differently)."""
    import torch

    return ".".join(torch.__version__.split(".")[:2])


def make_key(kind: str, **parts) -> str:
    """An explicit, stable key: the hash of sorted JSON of everything that determines the result."""
    doc = json.dumps({"cache_version": CACHE_VERSION, "kind": kind, **parts}, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(doc.encode()).hexdigest()}"


class Memo:
    """A diskcache-backed memo of result bytes with single-flight computation."""

    def __init__(self, directory: Optional[str | os.PathLike] = None, size_limit_mb: Optional[float] = None) -> None:
        self.directory = cache_dir(directory)
        self.size_limit = memo_limit_bytes(size_limit_mb)  # bytes on disk; the least recently used go first
        self._locks: dict[str, list] = {}  # key -> [its single-flight lock, callers holding or waiting]
        self._guard = threading.Lock()
        self._reopen = threading.Lock()
        self.computations = 0
        self.hits = 0
        self.recoveries = 0  # damaged databases moved aside and replaced
        self.waiting: set[str] = set()  # keys whose computation is under way
        self._cache = self._open()

    # --- opening, and recovering from damage ----------------------------------------------------

    def _open(self):
        """The diskcache over :attr:`directory`; a damaged one (or a file in its place) is moved aside first.
        None (no memo: nothing remembered, runs still run) when the folder cannot be made at all."""
        d = self.directory
        for attempt in range(2):
            try:
                if d.exists() and not d.is_dir():
                    raise NotADirectoryError(f"{d} is a file, not a folder")
                d.mkdir(parents=True, exist_ok=True)
                quick_check(d)
                return diskcache.Cache(str(d), size_limit=self.size_limit, cull_limit=CULL_LIMIT,
                                       eviction_policy=EVICTION_POLICY, sqlite_mmap_size=0)
            except (sqlite3.DatabaseError, NotADirectoryError) as exc:
                if attempt or (isinstance(exc, sqlite3.DatabaseError) and not damaged(exc)):
                    log.warning("The memo at %s cannot be opened (%s); running without it.", d, exc)
                    return None
                if not self._moved_aside(exc):
                    return None
            except OSError as exc:
                log.warning("The memo at %s cannot be opened (%s); running without it.", d, exc)
                return None
        return None

    def _moved_aside(self, exc: BaseException) -> bool:
        """Move the damaged memo aside (:func:`.memo_disk.move_aside`), counted in :attr:`recoveries`."""
        if not move_aside(self.directory, exc):
            return False
        self.recoveries += 1
        return True

    def _recover(self, failed, exc: BaseException) -> None:
        """The database under ``failed`` is damaged: move it aside and open a fresh one (once, whoever asks)."""
        with self._reopen:
            if self._cache is not failed:  # another caller recovered already
                return
            try:
                failed.close()
            except Exception:
                pass
            self._cache = self._open() if self._moved_aside(exc) else None

    def _db(self, op: Callable, default=None):
        """``op(cache)``, recovering from a damaged database (then trying once more); ``default`` without a memo."""
        for attempt in range(2):
            cache = self._cache
            if cache is None:
                return default
            try:
                return op(cache)
            except sqlite3.DatabaseError as exc:
                if not damaged(exc) or attempt:
                    raise
                self._recover(cache, exc)
        return default

    # --- values -----------------------------------------------------------------------------------

    def get(self, key: str, decode: Callable[[bytes], T]) -> Optional[T]:
        """The decoded value, or None when absent or unreadable (a damaged entry is deleted).

        Unreadable: the stored bytes fail their checksum (:func:`unseal`), or
        decoding fails; either way the entry is dropped, the caller
        recomputes, and every other entry stays."""
        try:
            stored = self._db(lambda c: c.get(key))
        except Exception:
            stored = None
            self._discard(key)
        if stored is None:
            return None
        data = unseal(stored)
        if data is None:
            log.info("dropped %s: its checksum does not match", key[:24])
            self._discard(key)
            return None
        try:
            value = decode(data)
        except Exception:
            self._discard(key)
            return None
        self.hits += 1
        return value

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` (sealed); beyond :attr:`size_limit` the least recently used entries are dropped."""
        sealed = seal(bytes(data))
        try:
            self._db(lambda c: c.set(key, sealed))  # diskcache culls the least recently used entry when over the limit
            trim(self._cache, self.size_limit)
        except Exception:  # a full or read-only disk loses the memo, not the result
            pass

    def _discard(self, key: str) -> None:
        try:
            self._db(lambda c: c.delete(key))
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
        """Hold ``key``'s single-flight lock: one computation of it at a time in this process.

        A key's lock lives while someone holds or waits for it, then goes, so
        :attr:`_locks` holds only the keys in flight."""
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def busy(self, key: str) -> bool:
        """Is this key being computed right now (by another caller)?"""
        return key in self.waiting

    def volume(self) -> int:
        """Bytes on disk."""
        try:
            return int(self._db(lambda c: c.volume(), 0))
        except Exception:
            return 0

    def __len__(self) -> int:
        try:
            return int(self._db(len, 0))
        except sqlite3.Error:
            return 0

    def __bool__(self) -> bool:  # an empty memo is still a memo (``if memo:`` must not test emptiness)
        return True

    def clear(self) -> None:
        self._db(lambda c: c.clear())

    def close(self) -> None:
        if self._cache is not None:
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
