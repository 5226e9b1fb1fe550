"""bf16 against fp32 on this CPU: seconds per step, where batch 8 loses, fidelity, and time to quality.

    python benchmarks/precision.py [--rounds 3] [--speed-steps 5] [--fid-steps 300] [--ttq-seed-steps 1500]
                                   [--ttq-steps 300] [--ttq-cases vit1,vit4,vit8,vit12,resnet1,...,mixer]
                                   [--sections speed,profile,fidelity,ttq] [--json benchmarks/results/precision.json]

Everything is measured in one process, as ratios of medians of interleaved
rounds (a shared 2-core machine drifts by +-20% between identical runs); no
timing is asserted anywhere.  Untrained models (nothing can be downloaded).

- speed: seconds per step of vitrep's engine in fp32 and in bf16 and of the
  seed's loop (:func:`vitrep.reference.paper_loop`, fp32), ViT-B/32 encoders 1
  and 12, batch 1 and 8 (8 seeds of the cat).
- profile: one batch-8 step at encoder 12 under torch.profiler, for a plain
  bf16 copy of the model (every op bf16, what the issue measured at 0.47x),
  vitrep's bf16 (products only) and fp32: the ops by self CPU time
  (benchmarks/results/precision_profile.txt).
- fidelity: 3 seeds x 3 images (cat, coffee, astronaut) at ViT-B/32 encoders
  1, 4, 12, ResNet-50 layer2 and Mixer block 4, under GD and Adam (each
  calibrated), judged by the one fidelity rule (:func:`vitrep.precision.fidelity`):
  bf16's final PSNR within 0.3 dB and SSIM within 0.01 of fp32's and the same
  success (m_g < m_r) in every row.  A family that fails anywhere stays fp32 under
  ``auto`` (its family adapter's ``auto_bf16``, vitrep/models/families).
- ttq (time to quality, the headline): seconds until m_g < m_r, and until the
  PSNR that the seed's own GD loop reaches in ``--ttq-seed-steps`` steps, for
  the seed's loop and vitrep's defaults (fp32 and bf16), the cat, seed 0.
  The seed's loop measures m_g against its own m_r (its objective has no
  positional embedding); measuring is outside its timer.

On a CUDA GPU this script has no part yet (benchmarks/results/precision_h100.json
is an earlier TF32/autocast check there, recorded by hand).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import record  # noqa: E402  (benchmarks/record.py)
from vitrep import precision as P  # noqa: E402
from vitrep.config import make_config  # noqa: E402
from vitrep.descent.param import pixel_starts  # noqa: E402
from vitrep.images import prepare, sample_path  # noqa: E402
from vitrep.models.pool import load_model  # noqa: E402
from vitrep.models.registry import make_ref  # noqa: E402
from vitrep.models.taps import run_paths, tap_path  # noqa: E402
from vitrep.models.weights import LoadedModel, build_model  # noqa: E402
from vitrep.reconstruction import reconstruct_many  # noqa: E402
from vitrep.reference import NewResNet, NewVit, paper_loop  # noqa: E402

IMAGES = ("cat", "coffee", "astronaut")
DEV = torch.device("cpu")
TTQ = {"vit1": ("vit_b_32", 1), "vit4": ("vit_b_32", 4), "vit8": ("vit_b_32", 8), "vit12": ("vit_b_32", 12),
       "resnet1": ("resnet50", "layer1"), "resnet2": ("resnet50", "layer2"), "resnet3": ("resnet50", "layer3"),
       "resnet4": ("resnet50", "layer4"), "mixer": ("mixer", 4)}
FIDELITY = (("vit_b_32", 1), ("vit_b_32", 4), ("vit_b_32", 12), ("resnet50", "layer2"), ("mixer", 4))


def _image(name: str) -> torch.Tensor:
    return prepare(sample_path(name), 224)


def _med(xs) -> float:
    return statistics.median(xs)


# --- speed ----------------------------------------------------------------------------------------------


def _engine_step(image, tap, batch, steps, precision) -> float:
    cfgs = [make_config("vit_b_32", tap, steps=steps, seed=s, report_every=steps, device="cpu", precision=precision)
            for s in range(batch)]
    r = reconstruct_many([image] * batch, cfgs)[0]
    return r.seconds / r.steps


def _seed_step(net, tap, image, init, steps) -> float:
    t = time.perf_counter()
    paper_loop(net, tap, image, init, steps)
    return (time.perf_counter() - t) / steps


def speed(rounds: int, steps: int) -> list[dict]:
    """Seconds per step, engine fp32 / bf16 and the seed's loop, interleaved rounds, medians."""
    image = _image("cat")
    net = NewVit(build_model(make_ref("vit_b_32"))[0].eval())  # the seed's: parameters trainable
    rows = []
    for tap in (1, 12):
        for batch in (1, 8):
            imgs = image.expand(batch, -1, -1, -1).contiguous()
            init = pixel_starts([make_config("vit_b_32", tap, seed=s) for s in range(batch)], 224, 224)[1]
            variants = {"seed": lambda: _seed_step(net, tap, imgs, init, steps),
                        "fp32": lambda: _engine_step(image, tap, batch, steps, "fp32"),
                        "bf16": lambda: _engine_step(image, tap, batch, steps, "bf16")}
            for f in variants.values():
                f()  # warm-up: packs, bf16 weights, allocator
            times = {k: [] for k in variants}
            for _ in range(rounds):
                for k, f in variants.items():
                    times[k].append(f())
            m = {k: _med(v) for k, v in times.items()}
            rows.append({"case": f"ViT-B/32 encoder-{tap}", "batch": batch, "s_per_step": m, "rounds": times,
                         "bf16_over_fp32": m["fp32"] / m["bf16"], "fp32_over_seed": m["seed"] / m["fp32"],
                         "bf16_over_seed": m["seed"] / m["bf16"]})
            print(f"  {rows[-1]['case']} batch {batch}: seed {m['seed']:.4f}, fp32 {m['fp32']:.4f}, bf16 "
                  f"{m['bf16']:.4f} s/step; bf16/fp32 {rows[-1]['bf16_over_fp32']:.2f}x", flush=True)
    return rows


# --- profile --------------------------------------------------------------------------------------------


def _profile_one(fn, label: str, reps: int = 2) -> tuple[str, list]:
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            fn()
    avg = prof.key_averages()
    top = sorted(avg, key=lambda e: -e.self_cpu_time_total)[:12]
    rows = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / reps, "calls_per_step": e.count / reps}
            for e in top]
    text = f"{label}\n" + avg.table(sort_by="self_cpu_time_total", row_limit=12)
    return text, rows


def profile_batch8(tap: int = 12, batch: int = 8) -> dict:
    """One batch-8 step: a plain bf16 copy of the model (all ops bf16), vitrep bf16 (products only), vitrep fp32."""
    ref = make_ref("vit_b_32")
    lm = load_model(ref, "cpu")
    module = build_model(ref)[0].eval().requires_grad_(False).to(torch.bfloat16)
    lm16 = LoadedModel(ref, module, "bf16-copy", DEV)
    x0 = torch.rand(batch, 3, 224, 224)

    def step(path, dtype, precision):
        from vitrep.fast import linear as fastops

        with fastops.compute(precision):
            x = x0.to(dtype).requires_grad_()
            outs = run_paths(x, [path] * batch)
            (g,) = torch.autograd.grad(sum(o.float().abs().sum() for o in outs), x)
        return g

    plain16 = tap_path(lm16, f"encoder-{tap}", fast=False)
    fast = tap_path(lm, f"encoder-{tap}")
    cases = {"plain bf16 copy (all ops bf16)": lambda: step(plain16, torch.bfloat16, "fp32"),
             "vitrep bf16 (products bf16)": lambda: step(fast, torch.float32, "bf16"),
             "vitrep fp32": lambda: step(fast, torch.float32, "fp32")}
    out, texts = {}, []
    for label, fn in cases.items():
        text, rows = _profile_one(fn, f"== {label}: ViT-B/32 encoder-{tap}, batch {batch}, one step (fwd + input grad)")
        out[label] = rows
        texts.append(text)
        print(f"  {label}: top op {rows[0]['op']} {rows[0]['self_ms_per_step']:.0f} ms/step", flush=True)
    head = record.describe(record.machine())
    record.result_path("precision_profile.txt").write_text(head + "\n\n" + "\n\n".join(texts) + "\n")
    return out


# --- fidelity -------------------------------------------------------------------------------------------


def fidelity(steps: int) -> list[dict]:
    """3 seeds x 3 images, GD and Adam, fp32 against bf16 (one batch of 9 rows per run)."""
    images = [_image(n) for n in IMAGES]
    rows_img = [im for im in images for _ in range(3)]
    out = []
    for name, layer in FIDELITY:
        for opt in ("gd", "adam"):
            runs, secs = {}, {}
            for p in ("fp32", "bf16"):
                cfgs = [make_config(name, layer, steps=steps, optimizer=opt, seed=s, report_every=steps, device="cpu",
                                    precision=p) for _ in IMAGES for s in range(3)]
                runs[p] = reconstruct_many(rows_img, cfgs)
                secs[p] = runs[p][0].seconds
            fin = {p: [{**r.final, "success": r.success} for r in runs[p]] for p in runs}
            rule = P.fidelity(fin["fp32"], fin["bf16"])  # the one rule (no verdicts here: single panels)
            dpsnr = [b["psnr"] - a["psnr"] for a, b in zip(fin["fp32"], fin["bf16"])]
            row = {"model": name, "layer": str(layer), "optimizer": opt, "steps": steps, "rows": len(dpsnr),
                   "max_abs_dpsnr": rule["max_abs_dpsnr"], "dpsnr": dpsnr, "max_abs_dssim": rule["max_abs_dssim"],
                   "dssim": [b["ssim"] - a["ssim"] for a, b in zip(fin["fp32"], fin["bf16"])],
                   "psnr_fp32": [a["psnr"] for a in fin["fp32"]],
                   "success_fp32": sum(a.success for a in runs["fp32"]),
                   "success_bf16": sum(b.success for b in runs["bf16"]), "same_success": rule["same_success"],
                   "seconds": secs, "bf16_speed": secs["fp32"] / secs["bf16"], "pass": rule["holds"]}
            out.append(row)
            print(f"  {name} {layer} {opt}: max |dPSNR| {row['max_abs_dpsnr']:.3f} dB, max |dSSIM| "
                  f"{row['max_abs_dssim']:.4f}, success fp32 "
                  f"{row['success_fp32']}/9 bf16 {row['success_bf16']}/9, {'PASS' if row['pass'] else 'FAIL'}; "
                  f"bf16 {row['bf16_speed']:.2f}x", flush=True)
    return out


# --- time to quality ------------------------------------------------------------------------------------


def _seed_net(name: str, layer):
    """The seed's network for ``name`` (parameters trainable, as the paper's loop left them) and its layer."""
    ref = make_ref(name)
    module = build_model(ref)[0].eval()
    if name.startswith("vit"):
        return NewVit(module), layer
    if name == "resnet50":
        return NewResNet(module), int(str(layer)[5:])
    lm = LoadedModel(ref, module, "seed", DEV)  # the Mixer: the same plain loop over its plain path
    path = tap_path(lm, lm.adapter.parse_tap(layer, ref.num_blocks), fast=False)

    def net(x, _layer):
        for op in path:
            x = op.fn(x)
        return x

    return net, layer


def _psnr(x, img) -> float:
    mse = float(((x.clamp(0, 1) - img) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def seed_trace(net, layer, image, init, shift, steps: int, every: int) -> dict:
    """The seed's loop (:func:`paper_loop`'s body), timed without its measurements: (step, s, m_g, PSNR)."""
    from torchvision.transforms.functional import gaussian_blur

    with torch.no_grad():
        target = net(image, layer).detach()
        m_r = float(torch.linalg.vector_norm(net(image + shift, layer) - target))
    a, clock, trace = init.clone(), 0.0, []
    for i in range(steps + 1):
        if i % every == 0 or i == steps:
            with torch.no_grad():
                trace.append((i, clock, float(torch.linalg.vector_norm(net(a, layer) - target)), _psnr(a, image)))
        if i == steps:
            break
        t0 = time.perf_counter()
        a = a.detach()
        a.requires_grad = True
        loss = 0.05 * torch.sum(torch.abs(target - net(a, layer)))
        loss.backward()
        t = i / (steps - 1) if steps > 1 else 0.0
        a = gaussian_blur(a.detach() - (1.0 + (0.05 - 1.0) * t) * a.grad, [3, 3], [2.4 - 2.0 * t] * 2)
        clock += time.perf_counter() - t0
    return {"m_r": m_r, "trace": trace}


def engine_trace(name, layer, image, steps: int, precision: str) -> dict:
    """vitrep's defaults (calibrated optimizer and steps sizes, ``steps`` steps): (step, s, m_g, PSNR) per report."""
    cfg = make_config(name, layer, steps=steps, device="cpu", precision=precision)
    trace = []
    r = reconstruct_many([image], [cfg], progress=lambda p: trace.append(
        (p.step, p.seconds, p.rows[0]["embedding_distance"], p.rows[0]["psnr"])))[0]
    return {"m_r": r.baseline["embedding_distance"], "trace": trace, "optimizer": cfg.optimizer,
            "steps_per_second": r.steps_per_second, "precision": r.config.precision}


def _first(trace, m_r, psnr):
    hit_mr = next((s for _, s, mg, _ in trace if mg < m_r), None)
    hit_p = next((s for _, s, _, q in trace if q >= psnr), None)
    return hit_mr, hit_p


def ttq(cases: list[str], seed_steps: int, steps: int) -> list[dict]:
    """Time to quality of each case (``key`` or ``key:N``, N the seed loop's steps for that case)."""
    image = _image("cat")
    out = []
    for spec in cases:
        key, _, n = spec.partition(":")
        name, layer = TTQ[key]
        n = int(n) if n else seed_steps
        cfg = make_config(name, layer, device="cpu")
        shift, init = pixel_starts([cfg], 224, 224)
        net, nl = _seed_net(name, layer)
        engine_trace(name, layer, image, 2, "bf16")  # warm-up: packs and bf16 weights
        runs = {"seed": seed_trace(net, nl, image, init, shift, n, 10),
                "fp32": engine_trace(name, layer, image, steps, "fp32"),
                "bf16": engine_trace(name, layer, image, steps, "bf16")}
        goal = runs["seed"]["trace"][-1][3]  # the PSNR the seed's loop reaches
        row = {"case": key, "model": name, "layer": str(layer), "seed_steps": n, "steps": steps,
               "psnr_goal": goal}
        for k, r in runs.items():
            t_mr, t_p = _first(r["trace"], r["m_r"], goal)
            last = r["trace"][-1]
            row[k] = {"to_success_s": t_mr, "to_seed_psnr_s": t_p, "final_psnr": last[3], "seconds": last[1],
                      "m_r": r["m_r"], "final_m_g": last[2],
                      **{x: r[x] for x in ("optimizer", "steps_per_second") if x in r}}
        out.append(row)
        show = lambda v: "never" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"  {key}: to m_g<m_r  seed {show(row['seed']['to_success_s'])} s, fp32 {show(row['fp32']['to_success_s'])}"
              f" s, bf16 {show(row['bf16']['to_success_s'])} s; to seed PSNR {goal:.2f} dB  seed "
              f"{show(row['seed']['to_seed_psnr_s'])} s, fp32 {show(row['fp32']['to_seed_psnr_s'])} s, bf16 "
              f"{show(row['bf16']['to_seed_psnr_s'])} s", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--speed-steps", type=int, default=5)
    ap.add_argument("--fid-steps", type=int, default=300)
    ap.add_argument("--ttq-seed-steps", type=int, default=1500)
    ap.add_argument("--ttq-steps", type=int, default=300)
    ap.add_argument("--ttq-cases", default=",".join(TTQ), help="keys of TTQ, each optionally :N (its seed-loop steps)")
    ap.add_argument("--sections", default="speed,profile,fidelity,ttq")
    ap.add_argument("--json", default=str(record.result_path("precision.json")))
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    res = {"machine": {**record.machine(), "flags": P.machine(), "cpu_bf16": P.cpu_bf16(), "amx": P.cpu_amx()},
           "gpu": "none (this script measures the CPU)", "settings": vars(a)}
    print(f"{record.describe(res['machine'])}; no GPU (this script measures the CPU)", flush=True)
    sections = a.sections.split(",")
    for name in sections:
        _section(name, a, res)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")  # after each section: a partial run keeps its part
    print(f"wrote {a.json}")
    return 0


def _section(name: str, a, res: dict) -> None:
    if name == "speed":
        print("seconds per step (median of interleaved rounds):", flush=True)
        res["speed"] = speed(a.rounds, a.speed_steps)
    if name == "profile":
        print("profile, batch 8 (benchmarks/results/precision_profile.txt):", flush=True)
        res["profile"] = profile_batch8()
    if name == "fidelity":
        print(f"fidelity, {a.fid_steps} steps, 3 seeds x 3 images:", flush=True)
        res["fidelity"] = fidelity(a.fid_steps)
        fams = {}
        for r in res["fidelity"]:
            fams.setdefault(make_ref(r["model"]).spec.family, []).append(r["pass"])
        res["family_pass"] = {f: all(v) for f, v in fams.items()}
        print(f"  families holding the bar: {res['family_pass']}", flush=True)
    if name == "ttq":
        print(f"time to quality (seed loop {a.ttq_seed_steps} steps unless :N, vitrep defaults {a.ttq_steps} steps):",
              flush=True)
        res["ttq"] = ttq(a.ttq_cases.split(","), a.ttq_seed_steps, a.ttq_steps)


if __name__ == "__main__":
    sys.exit(main())
