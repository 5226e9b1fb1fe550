"""The memo's files: where they live, how large they grow, values sealed with a checksum, damage moved aside.

:class:`vitrep.running.memo.Memo` keeps results here.  The folder is
:func:`cache_dir`; its bound on disk :func:`memo_limit_bytes` (4 GiB, 1 GiB in
public mode, or ``$VITREP_MEMO_MB``), kept by :func:`trim` one least recently
used entry at a time.  A value is stored sealed (:func:`seal`), so an entry
damaged or altered on disk fails :func:`unseal` and is recomputed.  A damaged
database (:func:`damaged`, :func:`quick_check`) is renamed out of the way
(:func:`move_aside`) and a fresh memo opened in its place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Optional

DEFAULT_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitrep"
SIZE_LIMIT = 4 * 2**30  # the default bound on disk
PUBLIC_SIZE_LIMIT = 2**30  # ... in public mode (VITREP_PUBLIC=1): a shared demo server's disk is small
EVICTION_POLICY = "least-recently-used"  # a result read often (a preset, the home page's example) stays
CULL_LIMIT = 1  # entries diskcache drops per write once over the limit (its default, 10, can empty a small memo)
# No memory-mapped reads of the database: a cache.db truncated under a running server then raises an error
# the memo recovers from, instead of a SIGBUS that ends the process (the database holds only the index).

log = logging.getLogger("vitrep")


def cache_dir(explicit: Optional[str | os.PathLike] = None) -> Path:
    """``explicit``, else ``$VITREP_CACHE_DIR``, else ``~/.cache/vitrep``."""
    return Path(explicit or os.environ.get("VITREP_CACHE_DIR") or DEFAULT_DIR).expanduser()


def memo_limit_bytes(size_limit_mb: Optional[float] = None) -> int:
    """The memo's bound on disk: ``size_limit_mb``, else ``$VITREP_MEMO_MB``, else 4 GiB (1 GiB in public mode)."""
    from ..errors import ConfigError

    raw = size_limit_mb if size_limit_mb is not None else os.environ.get("VITREP_MEMO_MB", "").strip()
    if raw in ("", None):
        from ..limits import public_mode

        return PUBLIC_SIZE_LIMIT if public_mode() else SIZE_LIMIT
    try:
        mb = float(raw)
    except (TypeError, ValueError):
        mb = -1.0
    if not mb > 0:
        raise ConfigError(f"The memo's size limit (VITREP_MEMO_MB) must be a positive number of megabytes, not {raw!r}.")
    return int(mb * 2**20)


SEAL = b"vitrep-memo-v1:"  # a sealed value: SEAL, 16 bytes of SHA-256 of the payload, the payload
DIGEST = 16


def seal(data: bytes) -> bytes:
    """``data`` with its checksum in front, as the memo stores it."""
    return SEAL + hashlib.sha256(data).digest()[:DIGEST] + data


def unseal(stored) -> Optional[bytes]:
    """The payload of a sealed value, or None when the seal or the checksum does not match."""
    if not isinstance(stored, (bytes, bytearray)) or not stored.startswith(SEAL):
        return None
    digest, data = stored[len(SEAL):len(SEAL) + DIGEST], bytes(stored[len(SEAL) + DIGEST:])
    return data if hashlib.sha256(data).digest()[:DIGEST] == digest else None


def damaged(exc: BaseException) -> bool:
    """Whether ``exc`` says the memo's database is damaged (not merely busy or locked by another process)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(w in text for w in ("malformed", "not a database", "corrupt"))
    return True


def quick_check(directory: Path) -> None:
    """Raise :class:`sqlite3.DatabaseError` if the memo's database in ``directory`` is damaged."""
    db = directory / "cache.db"
    if not db.exists():
        return
    con = sqlite3.connect(str(db), timeout=60)
    try:
        rows = con.execute("PRAGMA quick_check").fetchall()
    finally:
        con.close()
    if rows != [("ok",)]:
        raise sqlite3.DatabaseError(f"quick_check: {str(rows[0][0] if rows else 'no answer').splitlines()[0]}")


def move_aside(directory: Path, exc: BaseException) -> bool:
    """Rename the damaged memo to ``<folder>.damaged-<time>`` and say so in one warning; False if it cannot."""
    d = directory
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = d.with_name(f"{d.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = d.with_name(f"{d.name}.damaged-{stamp}-{n}")
    try:
        os.replace(d, aside)
    except OSError as err:
        log.warning("The memo at %s is damaged (%s) and cannot be moved aside (%s); running without it.",
                    d, short(exc), err)
        return False
    log.warning("The memo at %s was damaged (%s); it was moved to %s and a fresh memo started.",
                d, short(exc), aside)
    return True


def trim(c, size_limit: int) -> None:
    """Cull one least recently used entry of the diskcache ``c`` at a time until its volume is under the limit.

    diskcache culls ``cull_limit`` entries per write, which is not enough
    after a large entry, and its ``cull()`` drops ten at a time, which can
    empty a small memo, the newest entry included.  This runs diskcache's
    own policy step (``_cull``, one entry) until the memo fits; the entry
    just written is the most recently used, so it goes last, and only
    when it alone is over the limit.
    """
    if c is None:
        return
    n = len(c)
    while n and c.volume() > size_limit:
        try:
            with c._transact(retry=True) as (sql, cleanup):
                c._cull(time.time(), sql, cleanup, limit=1)
        except AttributeError:  # a diskcache without these internals: its public, coarser cull
            c.cull(retry=True)
            return
        n, before = len(c), n
        if n >= before:  # nothing was culled (another writer, or no policy): leave it to diskcache
            return


def short(exc: BaseException) -> str:
    """An exception's first line, at most 120 characters, for a warning."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
