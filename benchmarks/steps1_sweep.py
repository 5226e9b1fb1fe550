"""Every figure preset at one step a panel (`preset N --steps 1 --optimizer both`): no line may start with HELD.

One step cannot move a panel, so every check must say NOT CHECKED (issue 22).  Figures that need trained
weights run twice: as a user offline would (no weights: one sentence naming the file) and with a stand-in
checkpoint of the figure's architecture (untrained weights saved through `torch.save`), which the preset
takes as its trained weights.  Writes benchmarks/results/steps1_sweep.json.

    .venv/bin/python benchmarks/steps1_sweep.py [--figures 1-16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def standin(model: str, where: Path) -> Path:
    """An untrained checkpoint of ``model``'s architecture, saved as a user's state-dict file would be."""
    import torch
    from vitrep.models.registry import make_ref
    from vitrep.models.pool import load_model

    path = where / f"{model}_standin.pth"
    if not path.exists():
        lm = load_model(make_ref(model, "untrained"), "cpu")
        torch.save(lm.module.state_dict(), path)
    return path


def run(n: int, out: Path, memo: Path, weights: Path | None) -> dict:
    cmd = [sys.executable, "-m", "vitrep", "preset", str(n), "--steps", "1", "--optimizer", "both",
           "--out", str(out), "--cache-dir", str(memo)] + (["--weights", str(weights)] if weights else [])
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    lines = (p.stdout + p.stderr).splitlines()
    verdicts = [ln for ln in lines if ln.startswith(("HELD", "NOT HELD", "NOT CHECKED"))]
    held = [ln for ln in lines if ln.startswith("HELD")]
    return {"figure": n, "weights": weights.name if weights else None, "rc": p.returncode,
            "seconds": round(time.perf_counter() - t, 1), "held_lines": held, "verdict_lines": verdicts,
            "tail": lines[-3:]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--figures", default="1-16")
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.figures.split("-")) if "-" in a.figures else (int(a.figures),) * 2
    from vitrep.figures.catalogue import FIGURES

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fig in FIGURES.values():
            if not lo <= fig.figure <= hi:
                continue
            tries = [None]
            if fig.needs_trained and len(fig.models) == 1:
                tries.append(standin(fig.models[0], tmp))
            for w in tries:
                r = run(fig.figure, tmp / f"out{fig.figure}{'w' if w else ''}", tmp / "memo", w)
                rows.append(r)
                print(json.dumps(r), flush=True)
    bad = [r for r in rows if r["held_lines"]]
    from record import machine, result_path  # benchmarks/record.py

    doc = {"machine": machine(), "command": "preset N --steps 1 --optimizer both", "rows": rows,
           "figures_printing_HELD": [r["figure"] for r in bad]}
    result_path("steps1_sweep.json").write_text(json.dumps(doc, indent=1) + "\n")
    print("figures printing a line starting HELD:", doc["figures_printing_HELD"] or "none")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
