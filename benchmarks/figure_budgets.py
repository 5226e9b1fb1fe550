"""Measure each untrained figure's demo budget under the paper's method, and its verdicts under GD and Adam.

For each figure, every rung of a ladder of step counts runs the figure's
demo panels with ``--steps K`` from a fresh memo, under plain gradient
descent (the paper's method), and records each claim's verdict and the wall
time.  The demo budget is the smallest rung whose verdicts equal those of
the ladder's top rung (the paper's n where the ladder reaches it) with no
claim NOT CHECKED for panels that did not move: the smallest budget that
gives the answer the largest one gives.  It is not the smallest budget at
which a claim says HELD; a claim NOT HELD at the top rung stays NOT HELD.
Then the chosen budget runs once more under Adam, for the README table.

    .venv/bin/python benchmarks/figure_budgets.py                 # figures 2, 3, 10, 13, 16 (about 2 hours on 2 cores)
    .venv/bin/python benchmarks/figure_budgets.py --figure 13 --ladder 150,600

Writes benchmarks/results/figure_budgets.json (every rung) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import record  # noqa: E402  (benchmarks/record.py)
from vitrep.running.memo import Memo  # noqa: E402
from vitrep.figures import get_figure, run_figure  # noqa: E402

LADDERS = {2: (150, 300, 600, 1500), 3: (150, 300, 600), 10: (150, 300, 1000), 13: (150, 300, 600, 1500, 10_000),
           16: (150, 300, 600, 1500)}


def run_once(figure: int, steps: int, optimizer: str, out: Path) -> dict:
    fig = get_figure(figure)
    with tempfile.TemporaryDirectory() as memo_dir:
        t0 = time.perf_counter()
        summary = run_figure(fig, out / f"fig{figure}_{optimizer}_{steps}", "demo", memo=Memo(memo_dir),
                             optimizer=optimizer, steps=steps)
        seconds = time.perf_counter() - t0
    verdicts = [(v["claim"], v["verdict"], v["reason"]) for v in summary["verdicts"]]
    panels = [r for r in summary["panels"] if r["kind"] == "reconstruct"]
    unmoved = [r["label"] for r in panels if (r["final"]["embedding_distance"] > 0.5 * r["start"]["embedding_distance"])]
    return {"figure": figure, "optimizer": optimizer, "steps": steps, "seconds": round(seconds, 1),
            "verdicts": [{"claim": c, "verdict": v, "reason": why} for c, v, why in verdicts],
            "lines": [v["line"] for v in summary["verdicts"]], "unmoved": unmoved,
            "passing": f"{sum(r['success'] for r in panels)}/{len(panels)}", "variant": summary["variant"]}


def settled(rungs: list[dict]) -> dict:
    """The smallest rung whose verdicts equal the top rung's, with nothing unmoved."""
    top = [(v["claim"], v["verdict"]) for v in rungs[-1]["verdicts"]]
    for r in rungs:
        mine = [(v["claim"], v["verdict"]) for v in r["verdicts"]]
        still = any("did not move" in v["reason"] for v in r["verdicts"]) or (not r["verdicts"] and r["unmoved"])
        if mine == top and not still:
            return r
    return rungs[-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figure", type=int, action="append", help="default: 2, 3, 10, 13, 16")
    p.add_argument("--ladder", default=None, help="step counts, e.g. 150,300,600 (default: per figure)")
    p.add_argument("--out", default=str(record.result_path("figure_budgets.json")))
    p.add_argument("--no-adam", action="store_true", help="skip the Adam run at the chosen budget")
    a = p.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["machine"] = record.machine()
    doc.setdefault("figures", {})
    work = Path(tempfile.mkdtemp(prefix="vitrep-budgets-"))
    for figure in a.figure or sorted(LADDERS):
        ladder = [int(s) for s in a.ladder.split(",")] if a.ladder else LADDERS[figure]
        rungs = []
        for steps in ladder:
            r = run_once(figure, steps, "gd", work)
            rungs.append(r)
            print(f"figure {figure:>2} gd {steps:>6} steps: {r['seconds']:7.1f} s  "
                  + "  ".join(f"{v['claim']}:{v['verdict']}" for v in r["verdicts"])
                  + (f"  unmoved: {len(r['unmoved'])}" if r["unmoved"] else ""), flush=True)
        chosen = settled(rungs)
        entry = {"ladder": rungs, "demo_steps": chosen["steps"], "gd": chosen}
        if not a.no_adam:
            entry["adam"] = run_once(figure, chosen["steps"], "adam", work)
            print(f"figure {figure:>2} adam {chosen['steps']:>6} steps: {entry['adam']['seconds']:7.1f} s  "
                  + "  ".join(f"{v['claim']}:{v['verdict']}" for v in entry["adam"]["verdicts"]), flush=True)
        doc["figures"][str(figure)] = entry
        out.write_text(json.dumps(doc, indent=1) + "\n")  # after every figure: a partial run keeps its rows
    print("\n| figure | optimizer | budget (steps a panel) | verdicts | minutes |\n|---|---|---|---|---|")
    for figure, e in sorted(doc["figures"].items(), key=lambda kv: int(kv[0])):
        for opt in ("gd", "adam"):
            r = e.get(opt)
            if r:
                vs = "; ".join(f"{v['claim']}: {v['verdict']}" for v in r["verdicts"]) or "no claim (panels only)"
                print(f"| {figure} | {opt} | {r['steps']:,} | {vs} | {r['seconds'] / 60:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
