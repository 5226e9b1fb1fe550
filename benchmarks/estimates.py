"""How honest the figures page's expected time is: estimate from one run's measured costs, then time another.

    .venv/bin/python benchmarks/estimates.py [--figures 13 2] [--budget demo]

For each figure: a first run in a fresh memo records this machine's costs
(:mod:`vitrep.figures.costs`); the expected time for a second run, in
another fresh memo, is then computed from them and compared with the second
run's wall time.  Writes ``benchmarks/results/estimates.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import RESULTS, machine  # noqa: E402
from vitrep.figures import get_figure, run_figure  # noqa: E402
from vitrep.figures.costs import FILE, measured  # noqa: E402
from vitrep.running.memo import Memo  # noqa: E402


def one(n: int, budget: str) -> dict:
    fig = get_figure(n)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        t0 = time.perf_counter()
        run_figure(fig, Path(a) / "out", budget, memo=Memo(Path(a) / "memo"))
        first = time.perf_counter() - t0
        costs = measured(Path(a) / "memo")
        table = fig.expected_seconds(budget)
        expected = fig.expected_seconds(budget, costs=costs)
        (Path(b) / "memo").mkdir()
        (Path(b) / "memo" / FILE).write_text((Path(a) / "memo" / FILE).read_text())
        t0 = time.perf_counter()
        run_figure(fig, Path(b) / "out", budget, memo=Memo(Path(b) / "memo"))
        actual = time.perf_counter() - t0
    row = {"figure": n, "budget": budget, "first_run_s": first, "table_estimate_s": table,
           "estimate_s": expected, "actual_s": actual, "off_by": expected / actual - 1, "costs": costs}
    print(f"figure {n} {budget}: table {table:.0f} s, from this machine's run {expected:.0f} s, took {actual:.0f} s "
          f"({row['off_by']:+.0%}); the first run took {first:.0f} s", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", type=int, nargs="*", default=[13, 2])
    ap.add_argument("--budget", default="demo")
    ap.add_argument("--out", default=str(RESULTS / "estimates.json"))
    a = ap.parse_args()
    rows = [one(n, a.budget) for n in a.figures]
    Path(a.out).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
