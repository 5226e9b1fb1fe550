"""The one grid runner (sweep, ablation, figures): memo, table and sheet of a real little grid."""

import csv
import io

import torch

from vitrep.running.memo import Memo
from vitrep.config import make_config
from vitrep.running.grid import Cell, batches, run_grid


def _cells(steps=3):
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    kw = dict(patch=8, width=32, depth=3, heads=2, size=32, steps=steps, report_every=1)
    cells = [Cell(img, make_config("vit_custom", k, **kw), {"image": "noise", "layer": f"encoder-{k}"}) for k in (1, 2, 3)]
    return cells + [Cell(img, make_config("vit_custom", 2, remove=["attention"], **kw), {"image": "noise", "layer": "x"})]


def test_a_grid_runs_once_then_reads_the_memo_and_writes_its_table_and_sheet(tmp_path):
    memo = Memo(tmp_path / "memo")
    cells = _cells()
    assert batches(cells) == [[0, 1, 2, 3]]  # one model and schedule: one batch
    grid = run_grid(cells, memo)
    assert memo.computations == 4 and not grid.stopped
    again = run_grid(_cells(), memo)
    assert memo.computations == 4 and all(r.from_cache for r in again.results)
    rows = list(csv.DictReader(io.StringIO(grid.csv(["a.png", "b.png", "c.png", "d.png"]))))
    assert [r["layer"] for r in rows] == ["encoder-1", "encoder-2", "encoder-3", "x"]
    assert rows[0]["file"] == "a.png" and float(rows[2]["embedding_distance"]) == grid.results[2].final["embedding_distance"]
    sheet = grid.sheet("t", cols=2, target=True)
    assert sheet.width > 2 * 32 and sheet.height > 3 * 32  # target + 4 tiles in 2 columns


def test_a_stopped_grid_keeps_what_finished_and_remembers_nothing_unfinished(tmp_path):
    memo = Memo(tmp_path / "memo")
    grid = run_grid(_cells(steps=6), memo, progress=lambda p: p.step >= 2)
    assert grid.stopped and all(r.status == "stopped" for r in grid.results)
    assert memo.computations == 0 and len(memo) == 0
