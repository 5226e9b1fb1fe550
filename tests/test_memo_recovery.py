"""The memo survives damage: a corrupt database is moved aside and replaced, a corrupt value recomputed.

Real diskcache databases on disk, damaged as the probes of issue 19 damaged
them (overwritten, truncated, one page zeroed, a file where the folder goes),
through the memo and through the real command line.
"""

import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from vitrep.running.memo import Memo
from vitrep.running.memo_disk import seal, unseal
from vitrep.config import make_config
from vitrep.running.runs import cache_key, run

from .conftest import ROOT

ASIDE = re.compile(r"^memo\.damaged-\d{8}-\d{6}(-\d+)?$")


def _fill(directory, n: int = 30) -> Memo:
    m = Memo(directory)
    for i in range(n):
        m.put(f"k{i}", os.urandom(200 if i % 2 else 40_000))  # small values in the database, large ones in files
    m.close()
    return m


def damage(directory, how: str) -> None:
    db = directory / "cache.db"
    size = db.stat().st_size
    if how == "overwritten":
        db.write_bytes(b"not a database " * 200)
    elif how == "truncated":
        with open(db, "r+b") as f:
            f.truncate(size // 2)
    elif how == "page zeroed":
        with open(db, "r+b") as f:
            f.seek(4096)  # page 2 of sqlite's 4 KiB pages: the header still says "a database"
            f.write(b"\0" * 4096)
    elif how == "a file":
        import shutil

        shutil.rmtree(directory)
        directory.write_text("a file where the memo's folder goes")
    else:
        raise ValueError(how)


HOW = ["overwritten", "truncated", "page zeroed", "a file"]


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_memo_is_moved_aside_and_a_fresh_one_opened(tmp_path, how, caplog):
    caplog.set_level(logging.WARNING, logger="vitrep")
    d = tmp_path / "memo"
    _fill(d)
    damage(d, how)
    if how != "a file":  # the damage is real: sqlite itself refuses the database (or its check fails)
        with pytest.raises(sqlite3.DatabaseError):
            con = sqlite3.connect(str(d / "cache.db"))
            rows = con.execute("PRAGMA quick_check").fetchall()
            con.close()
            if rows != [("ok",)]:
                raise sqlite3.DatabaseError(rows)
    m = Memo(d)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "was damaged" in warnings[0] and "a fresh memo started" in warnings[0]
    aside = [p.name for p in tmp_path.iterdir() if p.name != "memo"]
    assert len(aside) == 1 and ASIDE.match(aside[0]), aside
    assert d.is_dir() and len(m) == 0 and m.recoveries == 1
    m.put("new", b"value")
    assert m.get("new", bytes) == b"value"
    assert len(Memo(d)) == 1  # and it opens cleanly next time, with no second warning
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_damage_found_while_the_memo_is_open_is_recovered_from(tmp_path, caplog):
    """The database replaced by garbage under an open memo: the next use moves it aside and goes on."""
    caplog.set_level(logging.WARNING, logger="vitrep")
    d = tmp_path / "memo"
    m = Memo(d)
    m.put("a", b"1")
    m._cache.close()  # its next use opens a new connection, as another thread's first use would
    (d / "cache.db").write_bytes(b"garbage " * 1000)
    assert len(m) == 0 and m.recoveries == 1
    m.put("b", b"2")
    assert m.get("b", bytes) == b"2" and m.get("a", bytes) is None
    assert sum("was damaged" in r.getMessage() for r in caplog.records) == 1


def test_a_corrupt_value_is_recomputed_and_the_others_stay(tmp_path, tiny_ref, cat32):
    """One value altered (a well-formed result that is not this run's, and a flipped bit): that run is computed
    again; the memo's other entries are still hits."""
    memo = Memo(tmp_path / "m")
    cfgs = [make_config(tiny_ref, k, steps=3) for k in (1, 2, 3)]
    first = [run(cat32, c, memo) for c in cfgs]
    assert memo.computations == 3 and len(memo) == 3
    keys = [cache_key(cat32, c) for c in cfgs]
    stored = memo._cache.get(keys[0])
    assert unseal(stored) is not None
    # a well-formed value of another run under keys[0], its seal kept: before checksums it was served
    wrong = stored[:len(stored) - len(unseal(stored))] + first[1].to_bytes()
    memo._cache.set(keys[0], wrong)
    again = run(cat32, cfgs[0], memo)
    assert not again.from_cache and memo.computations == 4 and again.config.tap == "encoder-1"
    assert again.final == first[0].final
    flipped = bytearray(memo._cache.get(keys[2]))
    flipped[len(flipped) // 2] ^= 0x10
    memo._cache.set(keys[2], bytes(flipped))
    assert not run(cat32, cfgs[2], memo).from_cache and memo.computations == 5
    assert run(cat32, cfgs[1], memo).from_cache  # the untouched entry survived both
    assert len(memo) == 3 and all(run(cat32, c, memo).from_cache for c in cfgs)


def test_values_are_sealed():
    data = b"payload"
    s = seal(data)
    assert unseal(s) == data and s.endswith(data)
    assert unseal(s[:-1] + b"X") is None and unseal(b"payload") is None and unseal(None) is None


def test_single_flight_locks_go_when_no_one_holds_them(tmp_path):
    """Memo._locks grew by one lock per key ever computed; now only keys in flight hold one."""
    memo = Memo(tmp_path / "m")
    for i in range(300):
        memo.get_or_compute(f"k{i}", lambda i=i: str(i).encode(), bytes, bytes)
    assert memo._locks == {} and memo.computations == 300
    # still one computation for concurrent callers of one key
    started, go, calls = threading.Event(), threading.Event(), []

    def slow():
        calls.append(1)
        started.set()
        go.wait(30)
        return b"v"

    first = threading.Thread(target=lambda: memo.get_or_compute("same", slow, bytes, bytes))
    first.start()
    started.wait(30)
    second = threading.Thread(target=lambda: memo.get_or_compute("same", slow, bytes, bytes))
    second.start()
    while memo._locks.get("same", [None, 0])[1] < 2 and second.is_alive():  # the second waits on the first's lock
        threading.Event().wait(0.01)
    assert memo._locks["same"][1] == 2
    go.set()
    first.join(30)
    second.join(30)
    assert calls == [1] and memo._locks == {} and memo.get("same", bytes) == b"v"


# --- through the command line -----------------------------------------------------------------------

def _cli(tmp_path, memo, out="o", steps="3"):
    return subprocess.run([sys.executable, "-m", "vitrep", "reconstruct", "--image", "cat", "--model", "vit_custom",
                           "--width", "32", "--heads", "2", "--depth", "2", "--size", "32", "--steps", steps,
                           "--quiet", "--cache-dir", str(memo), "--out", str(tmp_path / out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("how", ["page zeroed", "a file"])  # every kind through the Memo itself, above
def test_the_cli_recovers_from_a_damaged_memo(tmp_path, how):
    """Before: a sqlite3.DatabaseError (or FileExistsError) traceback on every later run.  Now: one warning, the
    run goes on, the next run is a memo hit."""
    memo = tmp_path / "memo"
    _fill(memo)  # a memo that earlier runs filled (the CLI's own writes go through the same Memo)
    damage(memo, how)
    second = _cli(tmp_path, memo, "b")
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "was damaged" in lines[0] and "a fresh memo started" in lines[0], second.stderr
    assert (tmp_path / "b" / "result.json").is_file() and "memo hit" not in second.stdout
    assert [p.name for p in tmp_path.iterdir() if ASIDE.match(p.name)]
    third = _cli(tmp_path, memo, "c")
    assert third.returncode == 0 and "memo hit" in third.stdout and not third.stderr.strip()


def test_sigkill_mid_run_leaves_no_entry(tmp_path):
    """A run killed with SIGKILL while it steps leaves nothing in the memo; the next run computes afresh."""
    memo = tmp_path / "memo"
    cmd = [sys.executable, "-m", "vitrep", "reconstruct", "--image", "cat", "--model", "vit_custom", "--steps",
           "100000", "--cache-dir", str(memo), "--out", str(tmp_path / "o")]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    stepping = re.compile(rb"\| *[1-9][0-9]*/100000 ")  # tqdm's bar has counted steps taken
    try:
        while not stepping.search(seen):
            chunk = p.stderr.read1(4096)
            if not chunk:
                break
            seen += chunk
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(60)
    assert stepping.search(seen), seen[-500:]
    assert p.returncode == -signal.SIGKILL
    assert len(Memo(memo)) == 0
    after = _cli(tmp_path, memo, "after")
    assert after.returncode == 0 and "memo hit" not in after.stdout and not after.stderr.strip(), after.stderr
