"""Unit visualisation, measured: one batch of 16 units against 16 runs of one, and Fourier against pixels.

    .venv/bin/python benchmarks/units.py [--steps 256] [--rounds 3] [--round-steps 32] [--no-timing] [--no-gratings]

Timing: 16 MLP units of untrained ViT-B/32's block 6 at 224 px (the Fourier
image, the robustness transforms): the whole batch for ``--steps`` once, and
the ratio from interleaved rounds in one process (each round: one batch of 16
for ``--round-steps``, then the 16 units one at a time for as many steps;
the ratio of the medians).

Gratings: a 64 px ViT whose stem filter is a grating (period 4, 8 or 16
pixels, at 30 degrees; :mod:`vitrep.units.known`), its channel visualised with
the pixel and the Fourier image in equal steps, without transforms (measured:
the mean patch correlation with the grating, which the best [0, 1] image
brings to 0.90) and with them (the grating's presence at any phase, since the
transforms shift it).  The table was decided before any run: these periods,
these step counts, both settings.  Writes ``benchmarks/results/units.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.record import RESULTS, machine  # noqa: E402
from vitrep.models.pool import load_model  # noqa: E402
from vitrep.models.registry import make_ref  # noqa: E402
from vitrep.units import make_units_config, visualise  # noqa: E402
from vitrep.units.known import grating, grating_presence, patch_correlation, set_stem  # noqa: E402

STILL = dict(jitter=0, scale=0.0, rotate=0.0)


def timing(steps: int, rounds: int, round_steps: int) -> dict:
    objectives = [f"mlp(6, {u})" for u in range(16)]
    ref = make_ref("vit_b_32")
    lm = load_model(ref, "cpu")
    t = time.perf_counter()
    whole = visualise(make_units_config(ref, objectives, steps=steps, report_every=steps), lm=lm)
    whole_s = time.perf_counter() - t
    batch, lone = [], []
    for r in range(rounds):
        t = time.perf_counter()
        visualise(make_units_config(ref, objectives, steps=round_steps, report_every=round_steps, seed=r), lm=lm)
        batch.append(time.perf_counter() - t)
        t = time.perf_counter()
        for o in objectives:
            visualise(make_units_config(ref, [o], steps=round_steps, report_every=round_steps, seed=r), lm=lm)
        lone.append(time.perf_counter() - t)
        print(f"round {r + 1}: batch of 16 {batch[-1]:.1f} s, 16 alone {lone[-1]:.1f} s", flush=True)
    return {"model": "vit_b_32 untrained, MLP units of block 6, 224 px, fourier image, transforms on",
            "batch_of_16_seconds": round(whole_s, 1), "batch_steps": steps, "status": whole.status,
            "rounds": rounds, "round_steps": round_steps, "batch_round_seconds": [round(v, 2) for v in batch],
            "one_at_a_time_round_seconds": [round(v, 2) for v in lone],
            "one_at_a_time_over_batch": round(statistics.median(lone) / statistics.median(batch), 2)}


def gratings() -> list[dict]:
    rows = []
    for period in (4, 8, 16):
        g = grating(16, period, 30)
        ref = make_ref("vit_custom", patch=16, width=32, depth=2, heads=2, size=64, seed=300 + period)
        lm = load_model(ref, "cpu")
        set_stem(lm, {0: g})
        for transforms in (False, True):
            for steps in (32, 128, 512):
                row = {"period": period, "transforms": transforms, "steps": steps}
                for param in ("pixel", "fourier"):
                    u = visualise(make_units_config(ref, ["channel('stem', 0)"], param=param, steps=steps,
                                                    report_every=steps, **({} if transforms else STILL)), lm=lm)
                    im = u.images[0]
                    row[param] = round(grating_presence(im, period, 30) if transforms
                                       else patch_correlation(im, g.expand(3, 16, 16)), 3)
                row["fourier_better"] = row["fourier"] > row["pixel"]
                print(row, flush=True)
                rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-steps", type=int, default=32)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-gratings", action="store_true")
    a = ap.parse_args()
    out = RESULTS / "units.json"
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["machine"] = machine()
    if not a.no_gratings:
        doc["gratings"] = gratings()
    if not a.no_timing:
        doc["timing"] = timing(a.steps, a.rounds, a.round_steps)
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
