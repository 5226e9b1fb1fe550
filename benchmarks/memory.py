"""Peak memory of the engine's heaviest actions, each in a fresh process, under a memory budget.

Run from the repository root:

    .venv/bin/python benchmarks/memory.py                      # VITREP_MEMORY_MB=2000, every action
    .venv/bin/python benchmarks/memory.py --memory-mb unlimited --only sweep

Actions (each a new Python process with a fresh memo, so nothing is a hit):

- ``import``: ``import torch, torchvision, timm, vitrep.reconstruction`` and nothing else (the floor).
- ``cli-sweep``: ``python -m vitrep sweep --image cat --model vit_b_32 --layers 1-12 --steps 20``.
- ``reconstruct``: one ViT-B/32 reconstruction from encoder 12, 150 steps (the dashboard's CPU default).
- ``sweep``: the dashboard's default layer sweep, ViT-B/32 encoders 1-12 and ResNet-50 conv1, layer1-4,
  20 steps, both models loaded first as the dashboard page does.
- ``ablation``: ViT-B/32 encoder 4 intact and with each of its 6 components removed, 20 steps, one batch.

A process's peak resident set comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that child).
The engine actions also sample ``/proc/self/status`` in the child and print, per phase, the
resident set at the phase's end and its peak, with the models' and packs' bytes, so the
growth can be placed.  The last line is ``peak_rss_mb N``, the largest peak of the actions
(the ``import`` floor excluded).  ``--json FILE`` writes everything (benchmarks/results/memory.json, with the
machine it ran on).
The peak comes from the kernel's count for the child, which starts from this (small, torch-free)
parent's own resident set.

Measured on the project's CPU machine (2 cores, torch 2.14.1+cu130, a CUDA build whose
``import torch`` alone holds 0.65 GB; the CPU build 2.13.0+cpu holds 0.21 GB), VITREP_MEMORY_MB=2000:

| action | peak RSS before run_paths lost its reference cycle | after (benchmarks/results/memory.json) |
|---|---|---|
| import (floor) | 832 MB | 832 MB |
| cli-sweep (ViT-B/32 1-12, 20 steps) | 2,216 MB | 1,909 MB |
| reconstruct (ViT-B/32 encoder 12, 150 steps) | 1,925 MB | 1,818 MB |
| sweep (ViT-B/32 1-12 + ResNet-50, 20 steps) | 3,023 MB | 2,428 MB |
| ablation (ViT-B/32 encoder 4, 7 rows, 20 steps) | 1,572 MB | 1,477 MB |

Where the sweep's memory goes (phases, as is): after imports 516 MB; ViT-B/32 built +517
(353 MB of weights, the rest initialisation leftovers); ResNet-50 +98; the ViT batch +1,306
(648 MB of packs, the activations, and every step's outputs and graph kept by the
``run_paths`` reference cycle until a cyclic collection); the ResNet batch +466 more.  The
activations themselves match ``sizes.row_bytes`` within 0.6-1.1x (measured with packs made
and freed memory returned).  With the fix the ResNet batch adds ~100 MB over the ViT's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = ("import", "cli-sweep", "reconstruct", "sweep", "ablation")


# --- inside the child -----------------------------------------------------------------------------

def _status() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) / 1024
    return out


class Phases:
    """Samples the resident set every 10 ms; ``mark(name)`` closes a phase and records its peak."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.rows = []
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, _status()["VmRSS"])
            time.sleep(0.01)

    def mark(self, name: str) -> None:
        from vitrep.fast import linear as fastops
        from vitrep.models import pool

        s = _status()
        row = {"phase": name, "rss_mb": round(s["VmRSS"]), "anon_mb": round(s["RssAnon"]),
               "file_mb": round(s["RssFile"]), "phase_peak_mb": round(max(self.peak, s["VmRSS"])),
               "models_mb": round(pool.cache_bytes() / 2 ** 20), "packs_mb": round(fastops.pack_bytes() / 2 ** 20),
               "cached": [lm.ref.name for lm, _ in pool.cached_models()]}
        self.rows.append(row)
        print("PHASE " + json.dumps(row), file=sys.stderr, flush=True)
        self.peak = 0.0


def child(action: str, steps: int, recon_steps: int) -> None:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    ph = Phases()
    from vitrep.running.memo import get_memo
    from vitrep.images import prepare, sample_path
    from vitrep.models.pool import load_model
    from vitrep.models.registry import make_ref
    from vitrep.config import make_config
    from vitrep.running.runs import run, run_batch

    ph.mark("import")
    memo = get_memo()
    cat = prepare(sample_path("cat"), 224)
    if action == "reconstruct":
        cfg = make_config("vit_b_32", "encoder-12", steps=recon_steps)
        load_model(cfg.model)
        ph.mark("load vit_b_32")
        r = run(cat, cfg, memo)
        ph.mark(f"reconstruct encoder-12, {r.steps} steps")
    elif action == "sweep":
        jobs = []
        for name in ("vit_b_32", "resnet50"):  # as app_pages/sweep.py: load every model, then one run_batch
            ref = make_ref(name)
            lm = load_model(ref)
            ph.mark(f"load {name}")
            jobs += [make_config(ref, tap, steps=steps, lr_start=0.25, lr_end=0.02) for tap in lm.adapter.sweep_taps(lm.depth)]
        done = []

        def progress(p) -> None:
            group = p.batch
            if group not in done:
                done.append(group)
                if group:
                    ph.mark(f"batch {group - 1} done")

        rs = run_batch([cat] * len(jobs), jobs, memo, progress=progress)
        ph.mark(f"batch {len(done) - 1} done ({len(rs)} rows, {steps} steps)")
    elif action == "ablation":

        ref = make_ref("vit_b_32")
        load_model(ref)
        ph.mark("load vit_b_32")
        kw = dict(steps=steps, lr_start=0.25, lr_end=0.02)
        cfgs = [make_config(ref, 4, **kw)] + [make_config(ref, 4, remove=c, **kw) for c in ref.adapter.components]
        rs = run_batch([cat] * len(cfgs), cfgs, memo)
        ph.mark(f"ablation encoder-4, {len(rs)} rows, {steps} steps")
    else:
        raise SystemExit(f"unknown action {action}")
    ph._stop = True


# --- the parent -----------------------------------------------------------------------------------

def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its own peak resident set (``wait4``'s ``ru_maxrss``), wall time and the phases it printed."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = [], []
    ts = [threading.Thread(target=lambda s=s, o=o: o.extend(s)) for s, o in ((p.stdout, out), (p.stderr, err))]
    for t in ts:
        t.start()
    _, status, usage = os.wait4(p.pid, 0)
    for t in ts:
        t.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    phases = [json.loads(line[6:]) for line in err if line.startswith("PHASE ")]
    if p.returncode:
        sys.stderr.write("".join(err[-20:]))
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024), "seconds": round(time.perf_counter() - t0, 1), "phases": phases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--memory-mb", default="2000", help="VITREP_MEMORY_MB for every action ('unlimited' for none)")
    ap.add_argument("--steps", type=int, default=20, help="steps of the sweeps and the ablation")
    ap.add_argument("--recon-steps", type=int, default=150, help="steps of the single reconstruction")
    ap.add_argument("--only", default=",".join(ACTIONS), help="comma-separated subset of " + ", ".join(ACTIONS))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.steps, a.recon_steps)

    results = {}
    print(f"VITREP_MEMORY_MB={a.memory_mb}; peak resident set of each action in a fresh process")
    print(f"{'action':<12} {'peak_rss_mb':>11} {'seconds':>8}")
    for action in [x.strip() for x in a.only.split(",") if x.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "VITREP_MEMORY_MB": a.memory_mb, "VITREP_CACHE_DIR": str(Path(tmp) / "memo"),
                   "PYTHONPATH": str(ROOT)}
            if action == "import":
                cmd = [sys.executable, "-c", "import torch, torchvision, timm, vitrep.reconstruction"]
            elif action == "cli-sweep":
                cmd = [sys.executable, "-m", "vitrep", "sweep", "--image", "cat", "--model", "vit_b_32", "--layers",
                       "1-12", "--steps", str(a.steps), "--out", str(Path(tmp) / "out"), "--quiet"]
            else:
                cmd = [sys.executable, __file__, "--child", action, "--steps", str(a.steps),
                       "--recon-steps", str(a.recon_steps)]
            r = results[action] = measure(cmd, env)
        print(f"{action:<12} {r['peak_rss_mb']:>11} {r['seconds']:>8}", flush=True)
        for ph in r["phases"]:
            print(f"    {ph['phase']:<40} rss {ph['rss_mb']:>5} (anon {ph['anon_mb']:>5}, files {ph['file_mb']:>4})"
                  f"  phase peak {ph['phase_peak_mb']:>5}  models {ph['models_mb']:>5}  packs {ph['packs_mb']:>4}"
                  f"  cached {','.join(ph['cached']) or '-'}", flush=True)
    if a.json:
        import torch

        from record import machine  # benchmarks/record.py

        Path(a.json).write_text(json.dumps({"machine": machine(), "memory_mb": a.memory_mb, "torch": torch.__version__,
                                            "steps": a.steps,
                                            "recon_steps": a.recon_steps, "results": results}, indent=1) + "\n")
    peaks = [r["peak_rss_mb"] for k, r in results.items() if k != "import"]
    print(f"peak_rss_mb {max(peaks) if peaks else results.get('import', {}).get('peak_rss_mb', 0)}")


if __name__ == "__main__":
    main()
