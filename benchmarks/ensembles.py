"""Seed ensembles, measured: the write-up's contrasts as ensembles, and one batch against N separate runs.

    .venv/bin/python benchmarks/ensembles.py [--seeds 8] [--steps 300] [--optimizers gd,adam] [--no-timing]

Contrasts (bundled images, untrained models, calibrated step sizes):
attention intact vs removed (ViT-B/32 encoder 8, removed in every block),
layer norms intact vs removed (Mixer block 8), figure 13's ln_1 + attention
alone (ViT-L/16, only encoder 1), ResNet-50 layer1 vs layer4.  Each row: the
mean pairwise input distance between members, the mean m_g and m_r, the
mean spread and the share of pixels left undetermined, and the minutes.
Timing: one batch of N against N separate runs of the same configs,
interleaved rounds in one process, the ratio of medians.  Writes
``benchmarks/results/ensembles.json`` with the machine, and prints the table
for docs/ensembles.md.
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
from vitrep.config import make_config  # noqa: E402
from vitrep.ensembles import member_configs, run_ensemble  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.reconstruction import reconstruct, reconstruct_many  # noqa: E402

# (contrast, label, model, layer, remove, image, arch)
CASES = [("attention", "ViT-B/32 encoder 8, intact", "vit_b_32", 8, "", "cat", {}),
         ("attention", "ViT-B/32 encoder 8, no attention", "vit_b_32", 8, "attention", "cat", {}),
         ("layer norm", "Mixer block 8, intact", "mixer", "block-8", "", "cat", {}),
         ("layer norm", "Mixer block 8, no layer norms", "mixer", "block-8", "norm_1,norm_2", "cat", {}),
         ("figure 13", "ViT-L/16 ln_1 + attention alone", "vit_l_16", "only-encoder-1",
          "residual_1,ln_2,mlp,residual_2", "rocket", {}),
         ("depth", "ResNet-50 layer1", "resnet50", "layer1", "", "cat", {}),
         ("depth", "ResNet-50 layer4", "resnet50", "layer4", "", "cat", {})]


def contrast_rows(seeds: int, steps: int, optimizers: list[str]) -> list[dict]:
    rows = []
    for opt in optimizers:
        for contrast, label, model, layer, remove, image, arch in CASES:
            cfg = make_config(model, layer, remove=remove, steps=steps, optimizer=opt, pos_embed=False, **arch)
            img = prepare(sample_path(image), cfg.model.input_size)
            t0 = time.perf_counter()
            e = run_ensemble(img, cfg, seeds)
            minutes = (time.perf_counter() - t0) / 60
            rows.append({"contrast": contrast, "panel": label, "optimizer": opt, "seeds": seeds, "steps": steps,
                         "pairwise_input_distance": e.pairwise_distance, "mean_m_g": e.mean_m_g,
                         "mean_m_r": e.mean_m_r, "mean_input_distance": e.mean_input_distance,
                         "mean_spread": float(e.std.mean()), "undetermined_share": e.undetermined,
                         "minutes": minutes})
            r = rows[-1]
            print(f"| {contrast} | {label} | {opt} | {r['pairwise_input_distance']:.3g} | {r['mean_m_g']:.3g} | "
                  f"{r['mean_m_r']:.3g} | {r['mean_spread']:.3g} | {r['undetermined_share']:.1%} | {minutes:.1f} |",
                  flush=True)
    return rows


def timing(seeds: int, steps: int, rounds: int) -> dict:
    """One batch of ``seeds`` members against the same configs run one by one (no memo), interleaved."""
    cfg = make_config("vit_b_32", 4, steps=steps, optimizer="gd", pos_embed=False)
    img = prepare(sample_path("cat"), 224)
    configs = member_configs(cfg, seeds)
    batch, alone = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        reconstruct_many([img] * seeds, configs)
        batch.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for c in configs:
            reconstruct(img, c)
        alone.append(time.perf_counter() - t0)
    return {"case": f"ViT-B/32 encoder 4, {steps} steps, {seeds} seeds, plain GD", "batch_s": batch,
            "separate_s": alone, "speedup": statistics.median(alone) / statistics.median(batch)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--optimizers", default="gd,adam")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timing-steps", type=int, default=30)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-contrasts", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "ensembles.json"))
    a = ap.parse_args()
    doc = {"machine": machine()}
    if not a.no_timing:
        doc["timing"] = timing(a.seeds, a.timing_steps, a.rounds)
        print(f"one batch vs {a.seeds} separate runs: {doc['timing']['speedup']:.2f}x (median of {a.rounds} "
              f"interleaved rounds)", flush=True)
    if not a.no_contrasts:
        print("| contrast | panel | optimizer | pairwise ‖a_g,i − a_g,j‖ | mean m_g | mean m_r | mean spread | "
              "undetermined | minutes |\n|---|---|---|---|---|---|---|---|---|")
        doc["contrasts"] = contrast_rows(a.seeds, a.steps, a.optimizers.split(","))
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
