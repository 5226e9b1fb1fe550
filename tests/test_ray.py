"""The engine on a real local Ray cluster (2 CPUs, 2 workers): same results as one process, through the memo,
a figure, a worker killed mid-sweep, Ctrl-C, and the command line."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from vitrep.running.memo import Memo  # noqa: E402
from vitrep.running.distributed import RayExecutor  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.registry import make_ref  # noqa: E402
from vitrep.figures import get_figure, run_figure  # noqa: E402
from vitrep.config import make_config  # noqa: E402
from vitrep.running.runs import cache_key, run_batch  # noqa: E402

from .conftest import ROOT, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    os.environ.pop("RAY_ADDRESS", None)  # never join another session's cluster
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 2**20)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def executor(cluster):
    """Two long-lived workers (one CPU each) for the whole module: their models stay loaded between tests."""
    with RayExecutor(workers=2) as ex:
        yield ex


def _small(width=64, depth=6, size=64):
    return make_ref("vit_custom", patch=8, width=width, depth=depth, heads=2, size=size)


def test_vit_b32_sweep_equals_one_process_and_is_memoised(executor, cat224, tmp_path):
    """Acceptance (a): every encoder of an untrained ViT-B/32 through Ray = the single-process batch; a repeat hits.

    Within 1% (here they come out bit for bit the same: rows never interact, whatever the chunks)."""
    cfgs = [make_config("vit_b_32", k, steps=4, report_every=2) for k in range(1, 13)]
    images = [cat224] * len(cfgs)
    here = run_batch(images, cfgs)
    memo = Memo(tmp_path / "memo")
    seen = []
    there = run_batch(images, cfgs, memo, progress=seen.append, executor=executor)
    assert len(there) == 12 and all(r is not None and not r.from_cache for r in there)
    for a, b in zip(here, there):
        assert a.config == b.config and b.status == "done" and b.steps == 4
        for k in ("embedding_distance", "input_distance"):
            assert b.final[k] == pytest.approx(a.final[k], rel=0.01), (a.config.tap, k)
        assert b.baseline["embedding_distance"] == pytest.approx(a.baseline["embedding_distance"], rel=1e-4)
        assert a.success == b.success
    # progress: once per chunk, counts that add up
    assert len(seen) >= 2 and seen[-1].chunks_done == seen[-1].chunks_total == len(seen)
    assert seen[-1].rows_done == seen[-1].rows_total == 12 and seen[-1].step == seen[-1].total == 48
    assert seen[-1].steps_per_second > 0 and seen[-1].seconds_left == 0
    assert all(memo.get(cache_key(cat224, c), lambda b: b) is not None for c in cfgs)
    assert memo.computations == 12
    again = run_batch(images, cfgs, memo, executor=executor)
    assert memo.computations == 12 and all(r.from_cache for r in again)
    assert [r.final for r in again] == [r.final for r in there]


def test_a_figure_through_ray(executor, tmp_path):
    """Acceptance (b): a whole untrained figure (3, quick budget) through the executor writes its sheet and numbers."""
    memo = Memo(tmp_path / "memo")
    out = tmp_path / "fig3"
    summary = run_figure(get_figure("single-encoders"), out, "quick", memo=memo, executor=executor)
    assert (out / "contact_sheet.png").is_file() and (out / "distances.json").is_file()
    doc = json.loads((out / "distances.json").read_text())
    assert len(doc["panels"]) == 24 and all(r["status"] == "done" for r in doc["panels"])
    assert summary["stopped"] is False and summary["claims"] == 0 and memo.computations == 24


def test_worker_killed_mid_sweep(executor, tmp_path):
    """Acceptance (c): a worker killed while it runs a chunk is restarted and the chunk retried; nothing done twice."""
    ref = _small()
    img = prepare(sample_path("cat"), 64)
    cfgs = [make_config(ref, k, steps=40, report_every=10, seed=s) for s in (0, 1) for k in range(1, 7)]
    memo = Memo(tmp_path / "memo")
    killed = []

    def kill_one(p):
        if not killed and executor.busy_pids():
            killed.append(executor.busy_pids()[0])
            os.kill(killed[0], signal.SIGKILL)

    executor.max_rows = 2
    try:
        restarts = executor.restarts
        res = run_batch([img] * len(cfgs), cfgs, memo, progress=kill_one, executor=executor)
    finally:
        executor.max_rows = None
    assert killed and executor.restarts > restarts and killed[0] not in executor.pids
    assert all(r is not None and r.status == "done" and not r.from_cache for r in res)
    assert memo.computations == len(cfgs) == len(memo)
    assert all(memo.get(cache_key(img, c), lambda b: b) is not None for c in cfgs)


def test_ctrl_c_cancels_and_keeps_finished_chunks(executor, cat32, tiny_ref, tmp_path):
    """Ctrl-C after the first chunk: the rest is cancelled and the workers end; a rerun computes only the rest."""
    cfgs = [make_config(tiny_ref, k, steps=30, report_every=10) for k in range(1, 5)]
    memo = Memo(tmp_path / "memo")

    def interrupt(p):
        raise KeyboardInterrupt

    executor.max_rows = 1
    try:
        with pytest.raises(KeyboardInterrupt):
            run_batch([cat32] * 4, cfgs, memo, progress=interrupt, executor=executor)
        assert executor.actors == [] and not memo.waiting
        first = memo.computations
        assert 1 <= first < 4 and len(memo) == first
        res = run_batch([cat32] * 4, cfgs, memo, executor=executor)
    finally:
        executor.max_rows = None
    assert memo.computations == 4 and sum(r.from_cache for r in res) == first


def test_cli_sweep_on_ray(executor, cluster, tmp_path, monkeypatch):
    """Acceptance (d): `sweep --ray ADDRESS` joins the cluster; without Ray, `--ray` is one sentence and status 2."""
    executor.kill_workers()  # free the cluster's two CPUs for the command's own workers
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "vitrep", "sweep", "--model", "vit_custom", "--patch", "8", "--width", "32",
            "--depth", "4", "--heads", "2", "--size", "32", "--layers", "1-2", "--steps", "2", "--quiet",
            "--cache-dir", str(tmp_path / "memo"), "--out", str(out)]
    t0 = time.perf_counter()
    p = subprocess.run(args + ["--ray", cluster], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["layer"] for r in rows] == ["encoder-1", "encoder-2"] and (out / "contact_sheet.png").is_file()
    print(f"cli sweep joining the cluster: {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()  # `--ray` alone: a local Ray of its own, shut down at the end
    p = subprocess.run(args[:-4] + ["--cache-dir", str(tmp_path / "memo2"), "--out", str(tmp_path / "local"),
                                    "--ray", "--ray-workers", "1"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert list(csv.DictReader(open(tmp_path / "local" / "sweep.csv")))[1]["layer"] == "encoder-2"
    print(f"cli sweep on a local Ray: {time.perf_counter() - t0:.1f} s")

    with monkeypatch.context() as mp:  # a Python where `import ray` fails, as where it is not installed
        mp.setitem(sys.modules, "ray", None)
        p = run_cli(*args[3:], "--ray")
    assert p.returncode == 2
    assert p.stderr.strip() == "vitrep: Ray is not installed: pip install -r requirements-ray.txt"
