"""TF32 against float32 on a CUDA GPU, by the one fidelity rule, on the gallery's figure 2; and its time there.

    python benchmarks/gpu_precision.py [--steps 1500] [--json benchmarks/results/gpu_precision.json]

Runs figure 2 (untrained ViT-B/32 encoders 1-12 beside untrained ResNet-50's
layers, the cat, plain GD: the write-up's central figure and the gallery's
first entry) at the write-up's budget, 1,500 steps a panel, twice on the GPU,
nothing read from the memo: once in full float32 and once with
``precision="tf32"``.  Then :func:`vitrep.precision.fidelity` compares the two
runs: every panel's final PSNR within 0.3 dB, its SSIM within 0.01, the same
successes (m_g < m_r), the same verdicts.  It records each run's wall time
(the time of figure 2 at the write-up's budget on this GPU, each precision,
after a 2-step warm-up run has loaded the models)
and says whether the GPU may be added to ``vitrep/precision_gpus.json``, the
list on which ``precision auto`` takes TF32.  It adds nothing by itself.

``--device cpu --b fp32 --steps 2`` runs the same code on a CPU (float32
against itself) as a check that the script works; it records nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitrep import precision as P  # noqa: E402
from vitrep.figures import get_figure, run_figure  # noqa: E402
from vitrep.figures.gallery import PLAN  # noqa: E402
from vitrep.figures.verdicts import verdict_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(precision: str, steps: int, device: str, out: Path) -> tuple[dict, float]:
    """Figure 2 at ``steps`` a panel in ``precision``, computed (no memo); its summary and wall seconds."""
    t0 = time.perf_counter()
    summary = run_figure(get_figure(2), out / precision, PLAN[2][0], memo=None, device=device, optimizer="gd",
                         steps=steps, precision=precision, say=lambda m: print("  " + m, flush=True))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return summary, time.perf_counter() - t0


def finals(summary: dict) -> list[dict]:
    return [{"label": r["label"], "psnr": r["final"]["psnr"], "ssim": r["final"]["ssim"], "success": r["success"]}
            for r in summary["panels"] if r.get("kind") == "reconstruct"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500, help="steps a panel (the write-up's budget: 1,500)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--b", default="tf32", help="the precision set against float32 (tf32; fp32 for a CPU check)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "gpu_precision.json"))
    a = ap.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_precision: no CUDA GPU here; run it where one is (or --device cpu --b fp32 --steps 2 to check "
              "the script)", file=sys.stderr)
        return 2
    dev = torch.device(a.device)
    name = P.gpu_name(dev) or "cpu"
    print(f"{name}, torch {torch.__version__}, figure 2 at {a.steps:,} steps a panel: fp32 then {a.b}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run("fp32", 2, a.device, Path(tmp) / "warm")  # models loaded and kernels chosen before either is timed
        ref, t_ref = run("fp32", a.steps, a.device, Path(tmp))
        got, t_got = run(a.b, a.steps, a.device, Path(tmp))
    lines = lambda s: [v["line"][:200] for v in s["verdicts"]]  # noqa: E731
    rule = P.fidelity(finals(ref), finals(got), verdict_set(got), verdict_set(ref))
    doc = {"gpu": name, "torch": torch.__version__, "capability": list(torch.cuda.get_device_capability(dev))
           if dev.type == "cuda" else None, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "figure": 2, "steps": a.steps, "precisions": ["fp32", a.b], "rule": rule,
           "seconds": {"fp32": round(t_ref, 1), a.b: round(t_got, 1)}, "speed": round(t_ref / max(t_got, 1e-9), 2),
           "panels": {"fp32": finals(ref), a.b: finals(got)}, "verdicts": {"fp32": lines(ref), a.b: lines(got)}}
    print(f"figure 2 at {a.steps:,} steps a panel: fp32 {t_ref / 60:.1f} min, {a.b} {t_got / 60:.1f} min "
          f"({doc['speed']}x); max |dPSNR| {rule['max_abs_dpsnr']:.3f} dB, max |dSSIM| {rule['max_abs_dssim']:.4f}, "
          f"same successes {rule['same_success']}, same verdicts {rule['same_verdicts']}", flush=True)
    if dev.type != "cuda":
        print("a CPU check of the script: nothing recorded")
        return 0
    Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    rel = Path(a.json).resolve().relative_to(ROOT) if Path(a.json).resolve().is_relative_to(ROOT) else a.json
    print(f"TF32 {'holds' if rule['holds'] else 'does NOT hold'} the fidelity rule on {name}"
          + (f": add \"{name}\": \"{rel}\" to tf32_holds in vitrep/precision_gpus.json" if rule["holds"]
             else ": precision auto stays float32 on it"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
