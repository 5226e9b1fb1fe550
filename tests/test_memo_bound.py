"""The memo is bounded on disk: diskcache drops the least recently used entries beyond the limit."""

import os
import random

import pytest

from vitrep.running.memo import Memo, get_memo
from vitrep.errors import ConfigError
from vitrep.config import make_config
from vitrep.result import Result
from vitrep.running.runs import run

MB = 2 ** 20


def _blob(i: int) -> bytes:
    """100-300 KB of incompressible bytes, about what a 224 px result with its snapshots takes."""
    return random.Random(i).randbytes(100_000 + (i * 37_000) % 200_000)


def test_volume_stays_under_the_limit_and_the_newest_entries_stay(tmp_path):
    memo = Memo(tmp_path / "m", size_limit_mb=3)
    assert memo.size_limit == 3 * MB
    for i in range(40):  # about 8 MB written into 3 MB
        memo.put(f"run:{i}", _blob(i))
        assert memo.volume() <= memo.size_limit, f"after put {i}"
    assert 8 <= len(memo) < 40
    for i in range(37, 40):  # the newest are readable, byte for byte
        assert memo.get(f"run:{i}", bytes) == _blob(i)
    assert memo.get("run:0", bytes) is None and memo.get("run:1", bytes) is None  # the oldest went


def test_a_read_keeps_an_entry(tmp_path):
    """Least recently *used*: a result looked at again (a preset, the home page's example) outlives newer ones."""
    memo = Memo(tmp_path / "m", size_limit_mb=2)
    memo.put("favourite", _blob(0))
    memo.put("other", _blob(1))
    for i in range(2, 30):
        assert memo.get("favourite", bytes) == _blob(0)
        memo.put(f"run:{i}", _blob(i))
    assert memo.get("favourite", bytes) == _blob(0)
    assert memo.get("other", bytes) is None


def test_real_runs_through_a_bounded_memo(tmp_path, tiny_ref, cat32):
    """Real results, computed and stored by ``run``: the memo stays under its limit and the last run is a hit."""
    probe_memo = Memo(tmp_path / "probe")
    empty = probe_memo.volume()  # the index alone
    probe = run(cat32, make_config(tiny_ref, 1, steps=2), probe_memo)
    size = len(probe.to_bytes())
    memo = Memo(tmp_path / "m", size_limit_mb=(empty + 4 * size) / MB)  # room for about four results
    cfgs = [make_config(tiny_ref, 1 + i % 4, steps=2, seed=i) for i in range(10)]
    for c in cfgs:
        assert not run(cat32, c, memo).from_cache
        assert memo.volume() <= memo.size_limit
    assert memo.computations == 10 and 2 <= len(memo) <= 4
    again = run(cat32, cfgs[-1], memo)
    assert again.from_cache and memo.computations == 10
    assert run(cat32, cfgs[0], memo).from_cache is False  # the first was dropped: computed again
    got = memo.get_or_compute("x", lambda: probe, Result.to_bytes, Result.from_bytes)
    assert got is probe and memo.get("x", Result.from_bytes).final == probe.final


def test_limit_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VITREP_MEMO_MB", "5")
    assert Memo(tmp_path / "a").size_limit == 5 * MB
    assert Memo(tmp_path / "b", size_limit_mb=7).size_limit == 7 * MB  # the argument wins
    assert get_memo().size_limit == 5 * MB  # the shared memo in $VITREP_CACHE_DIR
    monkeypatch.delenv("VITREP_MEMO_MB")
    monkeypatch.delenv("VITREP_PUBLIC", raising=False)
    assert Memo(tmp_path / "c").size_limit == 4 * 2 ** 30
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    assert Memo(tmp_path / "d").size_limit == 2 ** 30
    monkeypatch.setenv("VITREP_MEMO_MB", "a lot")
    with pytest.raises(ConfigError, match=r"^The memo's size limit \(VITREP_MEMO_MB\) must be a positive number of megabytes, not 'a lot'\.$"):
        Memo(tmp_path / "e")


def test_reopening_with_a_smaller_limit_applies_it(tmp_path):
    d = tmp_path / "m"
    big = Memo(d, size_limit_mb=10)
    for i in range(30):
        big.put(f"run:{i}", _blob(i))
    assert big.volume() > 2 * MB
    big.close()
    small = Memo(d, size_limit_mb=2)
    small.put("new", _blob(99))
    assert small.volume() <= 2 * MB
    assert small.get("new", bytes) == _blob(99)
    assert os.path.isdir(d) and len(small) < 30
