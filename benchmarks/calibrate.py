"""Calibrate the default step sizes: per model family, optimiser and depth, the schedule that reaches the bar best.

For each family's representative model (untrained, the paper's sizes) this
runs the bundled cat at a few taps, one batch per step size on a small grid,
with the dashboard's CPU default step count, and scores each run by
``m_g / m_r`` (the paper's criterion: below 1 is a pass; lower is better).
A run that blew up (the engine stepped back) or diverged is not eligible.
Each tap's best step size becomes the default for its band of depths; the
table goes to ``vitrep/calibration.json``, which the registry reads
(:mod:`vitrep.calibration`), with every score so the choice can be checked.

    .venv/bin/python benchmarks/calibrate.py            # all families, both optimisers (~20 min on 2 cores)
    .venv/bin/python benchmarks/calibrate.py --family vit --optimizer adam

The schedule decays linearly from ``lr`` to ``lr / 10`` (Adam) or
``lr * 0.08`` (plain steps, the ratio of the paper's 0.25 -> 0.02).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitrep.calibration import TABLE  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.registry import make_ref  # noqa: E402
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct_many

# family -> (model, arch, taps with the depth band each one stands for)
CASES = {
    "vit": ("vit_b_32", {}, [("encoder-1", (0, 1)), ("encoder-4", (2, 4)), ("encoder-8", (5, 8)),
                             ("encoder-12", (9, 999))]),
    "resnet": ("resnet50", {}, [("conv1", (0, 0)), ("layer1", (1, 1)), ("layer2", (2, 2)), ("layer3", (3, 3)),
                                ("layer4", (4, 999))]),
    "mixer": ("mixer", {"patch": 16, "width": 1024}, [("block-1", (0, 1)), ("block-8", (2, 999))]),
    "ffvit": ("ffvit", {}, [("encoder-1", (0, 1)), ("encoder-8", (2, 999))]),
    # timm's ConvNeXt (timm:NAME models, vitrep/models/families/timm_models.py): depth bands count stages
    "convnext": ("timm:convnext_tiny", {}, [("stage-1", (0, 1)), ("stage-2", (2, 2)), ("stage-3", (3, 3)),
                                           ("stage-4", (4, 999))]),
}
GRID = {"adam": (0.05, 0.1, 0.2, 0.4), "gd": (0.1, 0.25, 0.5, 1.0, 2.0)}
# the costly families skip the smallest Adam step, never the best for ViT or ResNet (README, Step sizes)
FAMILY_GRID = {("mixer", "adam"): (0.1, 0.2, 0.4), ("ffvit", "adam"): (0.1, 0.2, 0.4),
               # plain steps: the deep taps of these families chose the smallest step of the ViT's grid
               ("resnet", "gd"): (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
               ("mixer", "gd"): (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5), ("ffvit", "gd"): (0.025, 0.05, 0.1, 0.25, 0.5)}
END = {"adam": 0.1, "gd": 0.08}


def calibrate(family: str, optimizer: str, steps: int, image: str, say=print) -> tuple[list[dict], list[dict]]:
    name, arch, taps = CASES[family]
    ref = make_ref(name, **arch)
    img = prepare(sample_path(image), ref.input_size)
    scores = []
    grid = FAMILY_GRID.get((family, optimizer), GRID[optimizer])
    for lr in grid:
        t0 = time.perf_counter()
        cfgs = [make_config(ref, t, steps=steps, optimizer=optimizer, lr_start=lr, lr_end=lr * END[optimizer],
                            report_every=steps) for t, _ in taps]
        for (tap, band), r in zip(taps, reconstruct_many([img] * len(cfgs), cfgs)):
            ok = r.status == "done" and r.backoffs == 0
            ratio = r.final["embedding_distance"] / r.baseline["embedding_distance"]
            scores.append({"tap": tap, "lr_start": lr, "ratio": round(ratio, 4), "psnr": round(r.final["psnr"], 2),
                           "eligible": ok, "backoffs": r.backoffs, "status": r.status})
            say(f"{family:7}{optimizer:5} lr {lr:<5g} {tap:>11}: m_g/m_r {ratio:7.3f}  PSNR {r.final['psnr']:5.2f}"
                f"{'' if ok else '  (blew up: ' + r.status + f', {r.backoffs} back-offs)'}", flush=True)
        say(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for tap, band in taps:
        mine = [s for s in scores if s["tap"] == tap and s["eligible"]] or [s for s in scores if s["tap"] == tap]
        best = min(mine, key=lambda s: s["ratio"])
        rows.append({"depth": list(band), "tap": tap, "lr_start": best["lr_start"],
                     "lr_end": round(best["lr_start"] * END[optimizer], 6), "ratio": best["ratio"],
                     "psnr": best["psnr"], "edge_of_grid": best["lr_start"] in (grid[0], grid[-1])})
        assert ref.adapter.tap_depth(tap, ref.num_blocks) in range(band[0], band[1] + 1)
    return rows, scores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", action="append", choices=sorted(CASES), help="default: all")
    p.add_argument("--optimizer", action="append", choices=("adam", "gd"), help="default: both")
    p.add_argument("--steps", type=int, default=150, help="steps per run (default 150: the dashboard's CPU default)")
    p.add_argument("--image", default="cat")
    p.add_argument("--out", default=str(TABLE))
    a = p.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc.setdefault("default_optimizer", "adam")
    doc.setdefault("schedules", {})
    doc.setdefault("scores", {})
    for fam in a.family or list(CASES):
        for opt in a.optimizer or ["adam", "gd"]:
            rows, scores = calibrate(fam, opt, a.steps, a.image)
            doc["schedules"].setdefault(fam, {})[opt] = rows
            doc["scores"].setdefault(fam, {})[opt] = scores
            doc["how"] = (f"benchmarks/calibrate.py: untrained models, the bundled {a.image}, {a.steps} steps, "
                          f"torch {torch.__version__}; per tap the step size with the smallest m_g/m_r, over the "
                          f"grids {GRID}, per family where given: {FAMILY_GRID}")
            out.write_text(json.dumps(doc, indent=1) + "\n")  # after every family: a partial run keeps its rows
    return 0


if __name__ == "__main__":
    sys.exit(main())
