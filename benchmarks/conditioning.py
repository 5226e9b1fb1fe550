"""The Jacobian spectrum of a tap with each component removed: cost per matrix-vector pair, and what it says.

    python benchmarks/conditioning.py [--iterations 80] [--k 16] [--cases vit,resnet,mixer]

For untrained ViT-B/32 at encoder 4 (none / attention / ln_1,ln_2 / mlp
removed in every block, the README's `condition --compare` table), ResNet-50
at layer 2 (intact / skips removed) and the patch-16 Mixer at block 4 (none /
token mixing / both norms / channel mixing), on the bundled cat: one batch of
spectra per case, exactly as `python -m vitrep condition --compare` runs it
(positional embedding on, seed 0).  Prints, per row, sigma_max with its error
bar, the Ritz upper bound on sigma_min, the condition-number lower bound, the
effective rank, the gain along a - a_0, how many of the k values at each end
converged to 1%, and the seconds per matrix-vector pair (one J v and one J^T u
for every row of the batch) measured over the whole batch.  Writes
benchmarks/results/conditioning.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import record  # noqa: E402  (benchmarks/record.py)
from vitrep.conditioning import condition_many, make_condition_config, reading  # noqa: E402
from vitrep.config import make_config  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.pool import load_model  # noqa: E402
from vitrep.models.registry import make_ref  # noqa: E402

CASES = {
    "vit": ("vit_b_32", "4", ["none", "attention", "ln_1,ln_2", "mlp"]),
    "resnet": ("resnet50", "layer2", ["none", "skip"]),
    "mixer": ("mixer_b16", "4", ["none", "token_mixing", "norm_1,norm_2", "channel_mixing"]),
}


def run_case(name: str, a) -> dict:
    model, tap, sets = CASES[name]
    ref = make_ref(model)
    image = prepare(sample_path("cat"), ref.input_size)
    recons = [make_config(ref, tap, remove=[] if s == "none" else s.split(",")) for s in sets]
    cfgs = [make_condition_config(r, a.k, a.iterations, a.probes) for r in recons]
    lm = load_model(ref)
    t0 = time.perf_counter()
    spectra = condition_many(image, cfgs, lm=lm)
    secs = time.perf_counter() - t0
    pairs = spectra[0].matvecs / 2
    rows = []
    print(f"\n{ref.label()} {recons[0].tap}: J is {spectra[0].output_dim:,} x {spectra[0].input_dim:,}, "
          f"{len(sets)} rows in one batch, {spectra[0].iterations} Lanczos steps + {a.probes} probes, "
          f"{secs:.1f} s, {secs / pairs:.3f} s per matrix-vector pair for the batch "
          f"({secs / pairs / len(sets):.3f} s per row)")
    print("| removed | σ_max (± error) | σ_min ≤ | κ ≥ | effective rank | gain along a − a₀ | converged top, bottom |")
    print("|---|---|---|---|---|---|---|")
    for s, label in zip(spectra, sets):
        top, bottom = s.converged()
        row = dict(removed=label, sigma_max=s.sigma_top[0], sigma_max_error=s.top_error[0],
                   sigma_min_bound=s.sigma_bottom[0], condition_lower_bound=s.condition_estimate,
                   effective_rank=s.effective_rank, gain=s.gain, converged_top=top, converged_bottom=bottom, k=a.k)
        rows.append(row)
        print(f"| {label} | {s.sigma_top[0]:.4g} ± {s.top_error[0]:.2g} | {s.sigma_bottom[0]:.3g} | "
              f"{s.condition_estimate:.3g} | {s.effective_rank:.3g} | {s.gain:.3g} | {top}/{a.k}, {bottom}/{a.k} |")
    print(reading(spectra, sets))
    return dict(model=model, tap=recons[0].tap, output_dim=spectra[0].output_dim, input_dim=spectra[0].input_dim,
                iterations=spectra[0].iterations, seconds=round(secs, 2), matvec_pairs=pairs,
                seconds_per_pair=round(secs / pairs, 4), rows=rows, reading=reading(spectra, sets))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=0, help="Lanczos steps (0: the CLI's default, max(5k, 80))")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--cases", default="vit,resnet,mixer")
    ap.add_argument("--json", default=str(record.result_path("conditioning.json")))
    a = ap.parse_args(argv)
    machine = record.machine()
    print(f"{record.describe(machine)}; untrained models, the bundled cat")
    out = {"machine": machine, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cases": [run_case(c, a) for c in a.cases.split(",")]}
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
