"""Seconds per reconstruction step: the paper's own loop against vitrep's engine, in one process.

    python benchmarks/bench.py [--steps 20] [--device cpu|cuda] [--json benchmarks/results/bench.json]

For ViT-B/32 (untrained, 224) at layers 1, 4 and 12 and ResNet-50 at layer4 it
times (a) the paper's loop as its snippet shows (``vitrep.reference``:
trainable parameters, torchvision's gaussian_blur) and (b) the engine
(``vitrep.reconstruction``), same image, same steps, and prints their ratio.
It also prints the share of the machine's limit: the step's floating-point
work (forward plus backward to the input, counted by torch's FlopCounterMode)
per second, divided by a large matrix product's FLOP/s measured in the same
run (the best of several, measured between cases).  ``unpacked`` is the
engine without oneDNN's packed linear path (``VITREP_FAST=0``), to show what
that path is worth.  The last rows time a 12-layer sweep as the engine runs it (one batch
sharing the common forward) against twelve separate runs of (a).
Each case runs ``--rounds`` interleaved rounds and reports medians (timings on
a shared 2-core machine drift by +-20% between identical runs).  Everything is
a ratio against a baseline in the same process; no absolute timing is
asserted anywhere.

Each case also checks the fast-path bar at full size: one step's input
gradient (the engine's L1 loss, the cat as target) with the fast path against
the plain path, as a relative error, next to how far the plain path's own
gradient moves when every input pixel moves by one float32 ulp (what ReLU and
max-pool kinks make of rounding-level changes); for ResNet also against the
plain formula taking the fast path's ReLU and max-pool branches
(``vitrep.fast.resnet.same_branch_plain``), which leaves rounding only.  ``--bar-steps N`` adds
N-step runs of the engine, fast and plain, on ``--bar-seeds`` seeds: the
final distances' relative differences and whether success agrees.
``--cases`` picks cases (vit1, vit4, vit12, resnet).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import record  # noqa: E402  (benchmarks/record.py: where results go, the machine they name)
from vitrep.fast import linear as fastops  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.weights import build_model
from vitrep.models.pool import load_model
from vitrep.models.registry import make_ref  # noqa: E402
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct, reconstruct_many
from vitrep.reference import NewResNet, NewVit, paper_loop  # noqa: E402
from vitrep.models.taps import forward_tap, tap_path  # noqa: E402


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def matmul_flops(dev: torch.device, n: int = 4096, reps: int = 6) -> float:
    """The machine's limit: best FLOP/s of an n x n float32 matrix product."""
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    best = float("inf")
    for _ in range(reps):
        sync(dev)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def step_flops(lm, tap: str, image: torch.Tensor) -> float:
    """FLOPs of one engine step: forward to the tap, backward to the input."""
    from torch.utils.flop_counter import FlopCounterMode

    path = tap_path(lm, tap, pos_embed=False, fast=False)  # the same arithmetic; oneDNN's packed ops are not counted by FlopCounterMode
    x = image.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:
        out = x
        for op in path:
            out = op.fn(out)
        out.abs().sum().backward()  # to the input only: the parameters are frozen
    return float(fc.get_total_flops())


def time_paper(net, layer: int, image, init, steps: int, dev) -> float:
    paper_loop(net, layer, image, init, 2)  # warm-up
    sync(dev)
    t = time.perf_counter()
    paper_loop(net, layer, image, init, steps)
    sync(dev)
    return (time.perf_counter() - t) / steps


def grad_check(lm, tap: str, image: torch.Tensor, init: torch.Tensor, same_branch: bool = False) -> dict:
    """One step's input gradient, fast path against plain path (the engine's L1 loss, ``image`` as target).

    ``plain_ulp``: the plain gradient's own change when every input pixel moves by one float32 ulp, the
    scale at which ReLU / max-pool kinks turn rounding into gradient changes.  ``same_branch`` (ResNet,
    :mod:`vitrep.fast.resnet`): also against the plain formula taking the fast path's ReLU and max-pool branches.
    """
    def forward(x: torch.Tensor, fast: bool) -> torch.Tensor:
        return forward_tap(lm, x, tap, pos_embed=False, fast=fast)

    def grad(fast: bool, x0: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = forward(image, fast)
        x = x0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(0.05 * (forward(x, fast) - t).abs().sum(), x)
        return g

    def rel(a, b):
        return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))

    plain = grad(False, init)
    out = {"grad_rel_err": rel(grad(True, init), plain),
           "plain_ulp_rel": rel(grad(False, torch.nextafter(init, torch.full_like(init, 2.0))), plain)}
    if same_branch and tap.startswith("layer"):
        from vitrep.fast.resnet import same_branch_plain

        with torch.no_grad():
            t = forward(image, True)
        x, xr = init.clone().requires_grad_(True), init.clone().requires_grad_(True)
        y = forward(x, True)
        ref = same_branch_plain(lm.module, xr, y)
        v = 0.05 * torch.sign(y.detach() - t)
        out["same_branch_grad_rel_err"] = rel(torch.autograd.grad(y, x, v)[0], torch.autograd.grad(ref, xr, v)[0])
    return out


ULP_INIT = 0.7 * (1 + 2e-7)  # the engine's start image moved by about one float32 ulp (0.7 has a 6e-8 ulp)


def bar_runs(ref, tap: str, image: torch.Tensor, steps: int, seeds: int, dev) -> dict:
    """``steps``-step runs on ``seeds`` seeds (one batch), fast and plain: final distances and success.

    Also the plain path from a start image moved by one ulp ("ulp"): how far the plain path's own ends
    move with a rounding-level change, the scale any rounding-changing path is up against.
    """
    runs = {}
    for name, fast, mean in (("fast", True, 0.7), ("plain", False, 0.7), ("ulp", False, ULP_INIT)):
        old = os.environ.get("VITREP_FAST")
        os.environ["VITREP_FAST"] = "1" if fast else "0"
        try:
            cfgs = [make_config(ref, tap, steps=steps, pos_embed=False, seed=s, report_every=steps, device=str(dev),
                                init_mean=mean) for s in range(seeds)]
            runs[name] = reconstruct_many([image] * seeds, cfgs)
        finally:
            if old is None:
                os.environ.pop("VITREP_FAST")
            else:
                os.environ["VITREP_FAST"] = old
    keys = ("embedding_distance", "input_distance")
    out = {"steps": steps, "seeds": seeds, "rows": []}
    for f, p, u in zip(runs["fast"], runs["plain"], runs["ulp"]):
        row = {k: {"fast": f.final[k], "plain": p.final[k], "plain_ulp": u.final[k],
                   "rel_diff": abs(f.final[k] - p.final[k]) / abs(p.final[k]),
                   "ulp_rel_diff": abs(u.final[k] - p.final[k]) / abs(p.final[k])} for k in keys}
        row["success"] = {"fast": f.success, "plain": p.success, "plain_ulp": u.success}
        row["baseline_m_r"] = p.baseline["embedding_distance"]
        out["rows"].append(row)
    out["worst_rel_diff"] = max(r[k]["rel_diff"] for r in out["rows"] for k in keys)
    out["worst_ulp_rel_diff"] = max(r[k]["ulp_rel_diff"] for r in out["rows"] for k in keys)
    out["same_success"] = all(r["success"]["fast"] == r["success"]["plain"] for r in out["rows"])
    return out


SWITCHES = ("VITREP_FAST", "VITREP_CUDA_GRAPHS")


def time_engine(image, cfg, fast: bool = True) -> float:
    """The engine's seconds per step; ``fast=False`` leaves out the packed linear path on CPU and the
    CUDA graph on a GPU (VITREP_FAST=0, VITREP_CUDA_GRAPHS=0)."""
    old = {k: os.environ.get(k) for k in SWITCHES}
    os.environ.update({k: "1" if fast else "0" for k in SWITCHES})
    try:
        reconstruct(image, make_config(cfg.model, cfg.tap, steps=cfg.steps, pos_embed=False, device=cfg.device))  # warm-up
        r = reconstruct(image, cfg)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    return r.seconds / r.steps


CASES = {"vit1": ("ViT-B/32", "vit_b_32", 1), "vit4": ("ViT-B/32", "vit_b_32", 4),
         "vit12": ("ViT-B/32", "vit_b_32", 12), "resnet": ("ResNet-50", "resnet50", 4)}


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=str(record.result_path("bench.json")))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case; the median is reported")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--long", type=int, default=0, metavar="STEPS",
                    help="also time one ViT-B/32 encoder-12 run of STEPS steps (the paper's deepest figure: 105000)")
    ap.add_argument("--cases", default="vit1,vit4,vit12,resnet", help="which cases to time (vit1, vit4, vit12, resnet)")
    ap.add_argument("--bar-steps", type=int, default=0, metavar="N",
                    help="also run each case N steps fast and plain on --bar-seeds seeds and compare the ends")
    ap.add_argument("--bar-seeds", type=int, default=3)
    return ap.parse_args(argv)


def time_long(image, steps: int, dev) -> dict:
    """One ViT-B/32 encoder-12 run of ``steps`` steps, timed whole."""
    cfg = make_config(make_ref("vit_b_32"), "encoder-12", steps=steps, pos_embed=False, device=str(dev),
                      report_every=1000)
    sync(dev)
    t = time.perf_counter()
    r = reconstruct(image, cfg)
    sync(dev)
    long = {"case": f"ViT-B/32 encoder-12, {steps} steps", "total_s": time.perf_counter() - t,
            "loop_s": r.seconds, "final": r.final, "status": r.status}
    print(f"{long['case']}: {long['total_s']:.1f} s in all ({long['loop_s'] / steps * 1e3:.3f} ms per step), "
          f"m_g {long['final']['embedding_distance']:.4g}, status {long['status']}", flush=True)
    return long


def time_case(label: str, name: str, layer: int, a, image, init, dev, limits: list) -> dict:
    """One case's row: the paper's loop and the engine (with and without its fast path) in interleaved rounds,
    the step's FLOPs, and the fast-path bar; the matmul limit measured again after the rounds."""
    ref = make_ref(name)
    plain, _ = build_model(ref)  # the paper's copy: trainable parameters, as its code left them
    plain.eval().to(dev)
    net = (NewVit if name.startswith("vit") else NewResNet)(plain)
    lm = load_model(ref, str(dev))
    tap = f"encoder-{layer}" if name.startswith("vit") else f"layer{layer}"
    cfg = make_config(ref, tap, steps=a.steps, pos_embed=False, device=str(dev))
    paper_times, engines, plains = [], [], []
    packed = dev.type == "cuda" or fastops.enabled()  # ViT: packed linear layers; ResNet: vitrep.fast.resnet
    for _ in range(a.rounds):  # interleaved, so drifts in machine speed hit both alike
        paper_times.append(time_paper(net, layer, image, init, a.steps, dev))
        engines.append(time_engine(image, cfg))
        if packed:
            plains.append(time_engine(image, cfg, fast=False))
    limits.append(matmul_flops(dev))
    paper_s, engine_s = statistics.median(paper_times), statistics.median(engines)
    flops = step_flops(lm, tap, image)
    bar = grad_check(lm, tap, image, init, same_branch=name == "resnet50") \
        if dev.type == "cpu" and fastops.enabled() else None
    if bar is not None and a.bar_steps:
        bar["runs"] = bar_runs(ref, tap, image, a.bar_steps, a.bar_seeds, dev)
    row = {"case": f"{label} {tap}", "paper_s_per_step": paper_s, "engine_s_per_step": engine_s,
           "engine_unpacked_s_per_step": statistics.median(plains) if plains else None,
           "ratio": paper_s / engine_s, "step_gflop": flops / 1e9, "engine_gflops": flops / engine_s / 1e9,
           "bar": bar}
    print_case(row)
    return row


def print_case(row: dict) -> None:
    unpacked = row["engine_unpacked_s_per_step"]
    print(f"{row['case']}: paper {row['paper_s_per_step']:.5f} s/step, engine {row['engine_s_per_step']:.5f} s/step "
          f"({row['ratio']:.2f}x)" + (f", without the fast path {unpacked:.5f}" if unpacked is not None else ""),
          flush=True)
    bar = row["bar"]
    if bar is None:
        return
    print(f"  bar: one step's input gradient, fast vs plain {bar['grad_rel_err']:.2e} relative "
          f"(the plain path against itself, input moved one ulp: {bar['plain_ulp_rel']:.2e})"
          + (f"; against the plain formula taking the same ReLU/max-pool branches "
             f"{bar['same_branch_grad_rel_err']:.2e}" if "same_branch_grad_rel_err" in bar else ""), flush=True)
    if "runs" in bar:
        r = bar["runs"]
        print(f"  bar: {r['steps']} steps, {r['seeds']} seeds: final distances fast vs plain differ by at most "
              f"{r['worst_rel_diff']:.2%} (the plain path from a start moved one ulp: "
              f"{r['worst_ulp_rel_diff']:.2%}); success {'the same' if r['same_success'] else 'DIFFERS'} "
              f"({', '.join(str(x['success']['fast']) for x in r['rows'])})", flush=True)


def time_sweep(image, init, steps: int, dev) -> dict:
    """ViT-B/32 encoders 1-12: twelve runs of the paper's loop against the engine's one batch."""
    ref = make_ref("vit_b_32")
    plain, _ = build_model(ref)
    plain.eval().to(dev)
    net = NewVit(plain)
    paper_loop(net, 1, image, init, 2)
    sync(dev)
    t = time.perf_counter()
    for layer in range(1, 13):
        paper_loop(net, layer, image, init, steps)
    sync(dev)
    paper_total = time.perf_counter() - t
    # A batch shares its schedule; the calibrated defaults differ by layer, so the sweep takes the paper's.
    paper_schedule = dict(optimizer="gd", lr_start=1.0, lr_end=0.05, pos_embed=False, device=str(dev))
    cfgs = [make_config(ref, f"encoder-{k}", steps=steps, **paper_schedule) for k in range(1, 13)]
    reconstruct_many([image] * 12, [make_config(ref, c.tap, steps=2, **paper_schedule) for c in cfgs])  # warm-up
    t = time.perf_counter()
    reconstruct_many([image] * 12, cfgs)
    sync(dev)
    engine_total = time.perf_counter() - t
    return {"case": f"ViT-B/32 sweep encoders 1-12, {steps} steps each", "paper_total_s": paper_total,
            "engine_total_s": engine_total, "ratio": paper_total / engine_total}


def print_table(rows: list, sweep, machine: dict, steps: int, dev) -> None:
    print(f"{record.describe(machine)}; limit (4096^2 fp32 matmul) {machine['matmul_gflops_limit']:.1f} GFLOP/s; "
          f"{steps} steps per measurement\n")
    print(f"{'case':<24}{'paper s/step':>13}{'engine s/step':>15}{'ratio':>8}{'GFLOP/step':>12}{'GFLOP/s':>9}"
          f"{'of limit':>10}{'unpacked s/step' if dev.type == 'cpu' else 'no graph s/step':>17}")
    for r in rows:
        unpacked = "-" if r["engine_unpacked_s_per_step"] is None else f"{r['engine_unpacked_s_per_step']:.4f}"
        print(f"{r['case']:<24}{r['paper_s_per_step']:>13.4f}{r['engine_s_per_step']:>15.4f}{r['ratio']:>7.2f}x"
              f"{r['step_gflop']:>12.2f}{r['engine_gflops']:>9.1f}{r['share_of_limit']:>9.0%}{unpacked:>17}")
    if sweep:
        print(f"\n{sweep['case']}: paper loop x12 {sweep['paper_total_s']:.1f} s, engine batch "
              f"{sweep['engine_total_s']:.1f} s, ratio {sweep['ratio']:.2f}x")


def main(argv=None) -> int:
    a = parse(argv)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                       (a.device if a.device != "auto" else "cpu"))
    torch.manual_seed(0)
    limits = [matmul_flops(dev)]  # measured again after each case; the best is the limit
    image = prepare(sample_path("cat"), 224).to(dev)
    init = (torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 0.05 + 0.7).to(dev)
    long = time_long(image, a.long, dev) if a.long else None
    rows = [time_case(*CASES[c.strip()], a, image, init, dev, limits) for c in a.cases.split(",") if c.strip()]
    limit = max(limits)
    for r in rows:
        r["share_of_limit"] = r["engine_gflops"] * 1e9 / limit
    sweep = None if a.no_sweep else time_sweep(image, init, a.steps, dev)
    machine = {**record.machine(str(dev)), "matmul_gflops_limit": limit / 1e9}
    print_table(rows, sweep, machine, a.steps, dev)
    Path(a.json).write_text(json.dumps({"machine": machine, "steps": a.steps, "rows": rows, "sweep": sweep,
                                        "long": long}, indent=2) + "\n")
    print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
