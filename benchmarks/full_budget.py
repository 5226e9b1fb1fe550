"""Every untrained figure at the write-up's own budget, one figure at a time, each written as it finishes.

    python benchmarks/full_budget.py [--optimizer gd|adam] [--figures 2 13 3 10 16] [--out DIR]

Figure 10 runs its untrained variant (ViT-L/16 at 224 px, encoders 1 and 12) at the write-up's n = 1,000;
the others run ``--budget full``.  Each figure goes through the memo, so a stopped run resumes where it
stopped, losing at most the batch under way.  Each folder gets the figure's files and ``provenance.json``
(vitrep commit, torch, device, CPU model, date, wall time).  The results feed docs/findings.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vitrep.figures import get_figure, run_figure
from vitrep.running.memo import get_memo

ROOT = Path(__file__).resolve().parents[1]
# figure -> (budget, steps override): the write-up's step counts; figure 10 as its untrained variant at n = 1,000
PLAN = {2: ("full", None), 3: ("full", None), 13: ("full", None), 16: ("full", None), 10: ("demo", 1000)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def provenance(seconds: float, budget: str, steps) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    flags = sorted(set(w for w in Path("/proc/cpuinfo").read_text().split() if w.startswith(("amx", "avx512_bf16"))))
    return {"vitrep_commit": commit.strip(), "torch": torch.__version__, "device": "cpu", "cpu": cpu_model(),
            "cpu_flags": flags, "threads": torch.get_num_threads(), "date": datetime.now(timezone.utc).isoformat(
                timespec="seconds"), "seconds": round(seconds, 1), "budget": budget, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizer", default="gd", choices=("gd", "adam"))
    ap.add_argument("--figures", type=int, nargs="*", default=list(PLAN))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "full_budget"))
    ap.add_argument("--cache-dir", default=None)
    a = ap.parse_args()
    memo = get_memo(a.cache_dir)
    for n in a.figures:
        budget, steps = PLAN[n]
        fig = get_figure(n)
        out = Path(a.out) / f"figure{n}_{a.optimizer}"
        t0 = time.perf_counter()
        print(f"{datetime.now():%H:%M:%S} figure {n} ({fig.name}) {budget}{f' --steps {steps}' if steps else ''} "
              f"{a.optimizer} ...", flush=True)
        summary = run_figure(fig, out, budget, memo=memo, optimizer=a.optimizer, steps=steps,
                             say=lambda m: print("  " + m, flush=True))
        took = time.perf_counter() - t0
        (out / "provenance.json").write_text(json.dumps(provenance(took, budget, steps), indent=1) + "\n")
        print(f"{datetime.now():%H:%M:%S} figure {n} done in {took / 60:.1f} min", flush=True)
        for v in summary["verdicts"]:
            print("  " + v["line"][:300], flush=True)


if __name__ == "__main__":
    main()
