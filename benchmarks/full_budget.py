"""Every untrained figure at the write-up's own budget, one figure at a time, each written as it finishes.

    python benchmarks/full_budget.py [--optimizer gd|adam] [--figures 2 13 3 10 16] [--out DIR]
    python benchmarks/full_budget.py --ladder [--figures 13 2 16]   # re-derive the demo budgets

``--ladder`` re-derives each figure's demo budget under plain GD: it runs the
figure's demo panels at 150, 300, 600 ... steps a panel and stops at the
first rung whose verdicts (every claim, by every metric) equal those of the
figure's run at the write-up's budget (``figureN_gd/distances.json`` here);
``ladder.json`` records every rung with its wall time.

Figure 10 runs its untrained variant (ViT-L/16 at 224 px, encoders 1 and 12) at the write-up's n = 1,000,
figure 12 its untrained half where the trained weights are missing; the others run ``--budget full``.
Each figure goes through the memo, so a stopped run resumes where it stopped, losing at most the batch under
way.  Each folder gets the figure's files and ``provenance.json`` (vitrep commit, torch, device, CPU model,
date, wall time).  The results feed docs/findings.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vitrep.figures import get_figure, run_figure
from vitrep.figures.gallery import PLAN, untrained_only  # the write-up's budget per figure, as the gallery reads it
from vitrep.figures.verdicts import verdict_set
from vitrep.limits import cpu_model
from vitrep.running.memo import get_memo

ROOT = Path(__file__).resolve().parents[1]


def head() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


STARTED_ON = head()  # the code that computes is the code this process started with


def provenance(seconds: float, budget: str, steps) -> dict:
    commit = STARTED_ON
    flags = sorted(set(w for w in Path("/proc/cpuinfo").read_text().split() if w.startswith(("amx", "avx512_bf16"))))
    return {"vitrep_commit": commit, "torch": torch.__version__, "device": "cpu", "cpu": cpu_model(),
            "cpu_flags": flags, "threads": torch.get_num_threads(), "date": datetime.now(timezone.utc).isoformat(
                timespec="seconds"), "seconds": round(seconds, 1), "budget": budget, "steps": steps}


LADDER = (150, 300, 600, 1500)


def ladder(n: int, out: Path, memo) -> dict:
    """Rungs of figure ``n`` under plain GD until one gives the full budget's verdicts."""
    reference = json.loads((out / f"figure{n}_gd" / "distances.json").read_text())
    want, rungs = verdict_set(reference), []
    fig = get_figure(n)
    full_steps = max(p.steps for p in fig.panels_for(PLAN[n][0]) if p.kind == "reconstruct")
    for steps in [s for s in LADDER if s < (PLAN[n][1] or full_steps)]:
        t0 = time.perf_counter()
        summary = run_figure(fig, out / f"figure{n}_gd_ladder_{steps}", "demo", memo=memo, optimizer="gd",
                             steps=steps)
        got = verdict_set(summary)
        rungs.append({"steps": steps, "seconds": round(time.perf_counter() - t0, 1), "same": got == want,
                      "lines": [v["line"][:240] for v in summary["verdicts"]]})
        print(f"{datetime.now():%H:%M:%S} figure {n} at {steps} steps: {'the same verdicts' if got == want else 'differs'}"
              f" ({rungs[-1]['seconds'] / 60:.1f} min)", flush=True)
        if got == want:
            break
    chosen = next((r["steps"] for r in rungs if r["same"]), None)
    return {"figure": n, "full_budget_verdicts": [v["line"][:240] for v in reference["verdicts"]],
            "rungs": rungs, "demo_steps": chosen, **provenance(0.0, "demo", None)}


def publish(out: Path, gallery: Path) -> None:
    """Each finished figureN_OPT folder into the gallery: judged again by today's checks from the memo (nothing is
    computed: every panel is a memo hit), its provenance kept, the judging commit added."""
    from vitrep.figures.gallery import entry_name

    memo = get_memo(None)
    for prov_path in sorted(out.glob("figure*_*/provenance.json")):
        src = prov_path.parent
        if "_ladder_" in src.name:
            continue
        n, opt = int(src.name[6:].split("_")[0]), src.name.split("_")[1]
        budget, steps = PLAN[n]
        fig = get_figure(n)
        dest = gallery / entry_name(fig, opt)
        if dest.exists():
            shutil.rmtree(dest)
        def computing(p):  # every panel must be a memo hit: a computation reports progress, so stop it at once
            raise SystemExit(f"{src.name}: the memo lacks its panels (something would be computed); not published")

        run_figure(fig, dest, budget, memo=memo, optimizer=opt, steps=steps, progress=computing,
                   untrained_only=untrained_only(fig, budget))
        prov = json.loads(prov_path.read_text())
        prov["judged_with"] = head()
        (dest / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
        print(f"{src.name} -> {dest}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizer", default="gd", choices=("gd", "adam"))
    ap.add_argument("--figures", type=int, nargs="*", default=list(PLAN))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "full_budget"))
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--ladder", action="store_true", help="re-derive the demo budgets (after the gd full runs)")
    ap.add_argument("--table", action="store_true", help="print the docs/findings.md table of what is there")
    ap.add_argument("--publish", default=None, metavar="GALLERY", help="judge the finished figures again from the "
                                                                      "memo and write them into GALLERY (gallery/)")
    a = ap.parse_args()
    if a.publish:
        publish(Path(a.out), Path(a.publish))
        return
    if a.table:
        print(table(Path(a.out)))
        return
    memo = get_memo(a.cache_dir)
    if a.ladder:
        path = Path(a.out) / "ladder.json"
        doc = json.loads(path.read_text()) if path.exists() else {}
        for n in a.figures:
            doc[str(n)] = ladder(n, Path(a.out), memo)
            path.write_text(json.dumps(doc, indent=1) + "\n")
        return
    for n in a.figures:
        budget, steps = PLAN[n]
        fig = get_figure(n)
        out = Path(a.out) / f"figure{n}_{a.optimizer}"
        t0 = time.perf_counter()
        print(f"{datetime.now():%H:%M:%S} figure {n} ({fig.name}) {budget}{f' --steps {steps}' if steps else ''} "
              f"{a.optimizer} ...", flush=True)
        summary = run_figure(fig, out, budget, memo=memo, optimizer=a.optimizer, steps=steps,
                             say=lambda m: print("  " + m, flush=True), untrained_only=untrained_only(fig, budget))
        took = time.perf_counter() - t0
        (out / "provenance.json").write_text(json.dumps(provenance(took, budget, steps), indent=1) + "\n")
        print(f"{datetime.now():%H:%M:%S} figure {n} done in {took / 60:.1f} min", flush=True)
        for v in summary["verdicts"]:
            print("  " + v["line"][:300], flush=True)



def table(out: Path) -> str:
    """The docs/findings.md table from every figureN_OPT folder: figure | claim | optimizer | budget | L2 | SSIM |
    minutes (the figure's wall time on the machine its provenance names)."""
    lines = ["| figure | claim | optimizer | budget | by distance (L2) | by structure (SSIM) | minutes |",
             "|---|---|---|---|---|---|---|"]
    for d in sorted(out.glob("figure*_*/distances.json"), key=lambda p: (int(p.parent.name[6:].split("_")[0]),
                                                                         p.parent.name)):
        if "_ladder_" in d.parent.name:
            continue
        s = json.loads(d.read_text())
        prov = json.loads((d.parent / "provenance.json").read_text()) if (d.parent / "provenance.json").exists() else {}
        steps = sorted({r["steps"] for r in s["panels"] if r.get("kind") == "reconstruct"})
        budget = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}-{steps[-1]:,}"
        minutes = f"{prov['seconds'] / 60:.0f}" if "seconds" in prov else "?"
        if not s["verdicts"]:
            from vitrep.figures.verdicts import METHODS

            lines.append(f"| {s['figure']} | (no claim) | {' and '.join(METHODS[o] for o in s['optimizers'])} | "
                         f"{budget} | | | {minutes} |")
        for v in s["verdicts"]:
            by = v.get("by_metric") or {}
            l2 = by.get("L2", v["verdict"] if not by else "")
            ssim = by.get("SSIM", "")
            if not by and v.get("measure"):
                l2 = f"{v['verdict']} (by {v['measure']})"
            lines.append(f"| {s['figure']} | {v['claim']} | {v['method']} | {budget} | {l2} | {ssim} | {minutes} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
