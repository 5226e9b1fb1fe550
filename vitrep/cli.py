"""The command line: ``python -m vitrep COMMAND``.

Every user error ends with one sentence on stderr and exit status 2; no
traceback.  Long runs show a progress bar on stderr; results go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

from .errors import ConfigError, VitrepError
from .models.registry import ARCH_KEYS


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="model name (see `python -m vitrep models`), or timm:NAME for any "
                                                 "supported timm model (`models --timm TEXT`); default vit_b_32")
    g.add_argument("--weights", default=None, help="untrained (default), trained, or a checkpoint FILE")
    g.add_argument("--model-seed", type=int, default=None, help="initialisation seed of an untrained model (default 0)")
    for k in ARCH_KEYS:
        g.add_argument(f"--{k}", type=int, default=None, help=f"{k} of a configurable model (vit_custom, mixer, ffvit)")
    g.add_argument("--swap", default=None, help="components to copy in, e.g. stem,ln_1 or any state_dict name")
    g.add_argument("--swap-from", default=None, help="where swapped tensors come from: trained (default), untrained or FILE")
    g.add_argument("--device", default=None, help="auto (default: CUDA if present), cpu or cuda")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reconstruction")
    g.add_argument("--layer", default=None, help="a number (encoder/block/stage k) or a tap: stem, embed, only-encoder-3, norm, logits, layer3.2 ...")
    g.add_argument("--remove", default=None, help="components to remove, e.g. attention,mlp,ln_1,ln_2,residual_1,residual_2")
    g.add_argument("--blocks", default=None, help="blocks the removal applies to, e.g. 1-4,7 (default all)")
    _add_option_flags(g)


def _add_option_flags(g) -> None:
    """One flag per option of :class:`vitrep.config.ReconstructConfig`: name, default and help from its field."""
    from .config import options

    for f in options():
        if f.name == "device":  # a model option (``_add_model_args``)
            continue
        md = f.metadata
        flag = md["flag"] or f.name.replace("_", "-")
        if f.type in ("bool", bool):
            pair = g.add_mutually_exclusive_group()
            on = f"{md['help']}{' (default)' if f.default else ''}"
            pair.add_argument(f"--{flag}", dest=f.name, action="store_true", default=None, help=on)
            pair.add_argument(f"--no-{flag}", dest=f.name, action="store_false",
                              help=f"the opposite{' (default)' if not f.default else ''}")
            continue
        kind = md["type"] or type(f.default)
        shown = "" if f.default is None or "default" in md["help"] else f" (default {f.default})"
        g.add_argument(f"--{flag}", dest=f.name, type=kind, choices=md["choices"], default=None,
                       help=md["help"] + shown)


def _add_io_args(p: argparse.ArgumentParser, image: bool = True) -> None:
    if image:
        p.add_argument("--image", default=None, help="an image file, or a bundled sample: cat, coffee, astronaut, rocket")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--cache-dir", default=None, help="memo folder (default $VITREP_CACHE_DIR or ~/.cache/vitrep)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the disk memo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_ray_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray (several processes, GPUs or machines; pip install -r requirements-ray.txt)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the reconstructions on Ray workers: alone, a local Ray on this machine; with an "
                        "ADDRESS (auto, host:6379, ray://host:10001), that cluster")
    g.add_argument("--ray-gpus", type=float, default=None, metavar="FRACTION",
                   help="GPUs per Ray worker, e.g. 0.5 for two workers a GPU (default 1 where the cluster has GPUs)")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: one per GPU, or one per CPU core)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vitrep", description="See what vision models keep of their input.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_reconstruct_commands(sub)
    _add_preset_command(sub)
    _add_other_commands(sub)
    _add_condition_command(sub)
    return p


def _add_reconstruct_commands(sub) -> None:
    m = sub.add_parser("models", help="list models, sizes, taps and whether trained weights are on this machine")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.add_argument("--timm", default=None, metavar="TEXT",
                   help="list timm models whose name contains TEXT (use one as --model timm:NAME)")
    r = sub.add_parser("reconstruct", help="reconstruct an image from one layer's output")
    r.add_argument("--config", default=None, help="a config or result.json to rerun; flags given override it")
    _add_io_args(r)
    _add_model_args(r)
    _add_run_args(r)

    sw = sub.add_parser("sweep", help="your own grid: layers x surgeries x images -> one contact sheet and one CSV")
    sw.add_argument("--image", action="append", default=None, help="image file or sample name; repeat for several")
    sw.add_argument("--layers", default="all", help="e.g. 1-12, or 1,4,stem,only-encoder-3 (default: every layer)")
    sw.add_argument("--surgeries", default="none", help="removal sets separated by ';', e.g. 'none;attention;mlp,ln_2'")
    _add_io_args(sw, image=False)
    _add_model_args(sw)
    _add_run_args(sw)
    _add_ray_args(sw)


def _add_preset_command(sub) -> None:
    pr = sub.add_parser("preset", help="run one of the paper's figures and judge its claims (see --list)")
    pr.add_argument("name", nargs="?", help="preset name or figure number")
    pr.add_argument("--list", action="store_true", help="list the presets with their page figure")
    pr.add_argument("--budget", choices=("quick", "demo", "full"), default=None,
                    help="quick: a pipeline check in seconds; demo (default): the smallest budget at which the "
                         "figure's claims can be judged on a CPU; full: the paper's step counts, for a GPU")
    pr.add_argument("--quick", action="store_true", help="the same as --budget quick")
    pr.add_argument("--image", action="append", default=None,
                    help="run the figure on your own image (a file or sample name) instead of the bundled one; "
                         "repeat for figures with two images")
    pr.add_argument("--optimizer", choices=("gd", "adam", "both"), default="gd",
                    help="gd (default): the paper's plain gradient descent, calibrated step sizes; adam: fast, "
                         "but it rescales each pixel's step and can hide poor conditioning; both: every panel "
                         "under each, one verdict per optimizer, side by side")
    pr.add_argument("--steps", type=int, default=None, metavar="K",
                    help="run every panel K steps (overrides the budget's step counts)")
    pr.add_argument("--weights", default=None, help="a checkpoint FILE to use wherever the preset needs trained weights")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--all", action="store_true",
                    help="every figure that needs no trained weights (all of them with --weights FILE), "
                         "each into OUT/<preset name>/")
    _add_io_args(pr, image=False)
    _add_ray_args(pr)



def _add_other_commands(sub) -> None:
    ge = sub.add_parser("generate", help="generate an input that a trained model takes for an ImageNet class")
    ge.add_argument("--class", dest="cls", default=None, help="class name (searched) or index 0-999")
    ge.add_argument("--search", default=None, help="list the ImageNet classes matching this text and exit")
    ge.add_argument("--steps", type=int, default=400)
    ge.add_argument("--lr", type=float, default=None, help="step size in pixel units at the start (default 0.05)")
    ge.add_argument("--lr-end", type=float, default=None)
    ge.add_argument("--jitter", type=int, default=None, help="canvas enlargement in pixels for the jitter phase (default 32; 0 = off)")
    ge.add_argument("--jitter-start", type=int, default=None, help="step where jitter begins (default 200)")
    ge.add_argument("--raw-grad", action="store_true", help="the paper's raw step lr*g instead of lr*g/mean|g|")
    ge.add_argument("--seed", type=int, default=0)
    _add_io_args(ge, image=False)
    _add_model_args(ge)

    fi = sub.add_parser("filters", help="write the stem filter grid, untrained beside the chosen weights")
    _add_io_args(fi, image=False)
    _add_model_args(fi)
    fi.add_argument("--scale", type=int, default=2, help="enlarge each filter tile this many times")

    ln = sub.add_parser("layernorm", help="show why layer norm is not invertible (the paper's vectors or yours)")
    ln.add_argument("vectors", nargs="*", help="vectors like '0,2,4' (default: the paper's three)")


def _add_condition_command(sub) -> None:
    co = sub.add_parser("condition", help="the Jacobian spectrum of one tap at an image: conditioning, measured")
    _add_io_args(co)
    _add_model_args(co)
    g = co.add_argument_group("tap")
    g.add_argument("--layer", default=None, help="a number (encoder/block/stage k) or a tap, as for reconstruct")
    g.add_argument("--remove", default=None, help="components to remove, e.g. attention or ln_1,ln_2")
    g.add_argument("--blocks", default=None, help="blocks the removal applies to, e.g. 1-4 (default all)")
    g.add_argument("--pos-embed", dest="pos_embed", action=argparse.BooleanOptionalAction, default=None,
                   help="add the positional embedding as the model does (default on)")
    e = co.add_argument_group("estimator")
    e.add_argument("--k", type=int, default=16, help="singular values at each end of the spectrum (default 16)")
    e.add_argument("--iterations", type=int, default=0,
                   help="Lanczos steps (default max(5k, 80)); more gives a truer bottom of the spectrum")
    e.add_argument("--probes", type=int, default=8, help="random probes for the Frobenius norm (default 8)")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the Lanczos start vector and of the starting noise a_0 the gain is measured from")
    e.add_argument("--compare", default=None, metavar="SETS",
                   help="removal sets separated by ';', e.g. 'none;attention;ln_1,ln_2;mlp': one spectrum each, "
                        "one table and one overlaid plot")



# --- helpers -------------------------------------------------------------------------------------

def _image_path(text: Optional[str]) -> Path:
    from .images import image_source

    if not text:
        raise ConfigError("Give an image with --image PATH (or a bundled sample: cat, coffee, astronaut, rocket).")
    return image_source(text)


def config_from_args(a: argparse.Namespace):
    """Merge ``--config`` (if any), explicit flags and defaults into a validated config."""
    from .config import ReconstructConfig, make_config, options, read_config_file
    from .models.registry import make_ref

    base: dict = {}
    if getattr(a, "config", None):  # every field's type and bounds checked: one sentence, never a traceback
        base = ReconstructConfig.from_dict(read_config_file(a.config)).to_dict()
    bm = base.get("model", {})
    pick = lambda flag, key, default: flag if flag is not None else bm.get(key, default)  # noqa: E731
    arch = {k: pick(getattr(a, k), k, None) for k in ARCH_KEYS}
    swaps = a.swap if a.swap is not None else list(bm.get("swaps", ()))
    ref = make_ref(pick(a.model, "name", "vit_b_32"), pick(a.weights, "weights", "untrained"),
                   seed=pick(a.model_seed, "seed", 0), swaps=swaps, swap_from=pick(a.swap_from, "swap_from", "trained"),
                   **arch)
    kw = {f.name: (getattr(a, f.name) if getattr(a, f.name, None) is not None else base.get(f.name, f.default))
          for f in options()}
    surg = base.get("surgery") or {}
    remove = a.remove if a.remove is not None else list(surg.get("remove", ()))
    blocks = a.blocks if a.blocks is not None else surg.get("blocks")
    layer = a.layer if a.layer is not None else base.get("tap", "1")
    return make_config(ref, layer, remove=remove, blocks=blocks, **kw)


class _Bar:
    """A tqdm progress bar fed by the engine's callback."""

    def __init__(self, total: int, quiet: bool, label: str) -> None:
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="step", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, p) -> None:
        row = p.rows[0] if p.rows else {}
        self.to(p.step, **({"m_g": f"{row['embedding_distance']:.3g}", "psnr": f"{row['psnr']:.1f}"} if row else {}))

    def to(self, step: int, **postfix) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _executor(a):
    """A :class:`~vitrep.running.distributed.RayExecutor` for ``--ray`` (a context manager), else a null context."""
    import contextlib

    if getattr(a, "ray", None) is None:
        if getattr(a, "ray_gpus", None) is not None or getattr(a, "ray_workers", None) is not None:
            raise ConfigError("--ray-gpus and --ray-workers go with --ray.")
        return contextlib.nullcontext(None)
    from .running.distributed import RayExecutor

    return RayExecutor(address=a.ray, workers=a.ray_workers, gpus_per_worker=a.ray_gpus)


def _cluster_step(bar: "_Bar", p) -> None:
    """Move a bar to a Ray run's progress (one update per finished chunk)."""
    if bar.bar is None:
        return
    bar.bar.total = p.total
    left = f"{p.seconds_left:.0f}s" if p.seconds_left == p.seconds_left else "?"
    bar.to(p.step, chunks=f"{p.chunks_done}/{p.chunks_total}", rows=f"{p.rows_done}/{p.rows_total}",
           rate=f"{p.steps_per_second:.1f} steps/s", left=left)


def write_result(result, out: Path) -> None:
    from .images import to_pil

    out.mkdir(parents=True, exist_ok=True)
    to_pil(result.target).save(out / "target.png")
    to_pil(result.image).save(out / "reconstruction.png")
    (out / "curves.csv").write_text(result.curves_csv())
    (out / "result.json").write_text(json.dumps(result.summary(), indent=2) + "\n")


# --- commands ------------------------------------------------------------------------------------

def cmd_models(a) -> int:
    from .models.registry import SPECS, make_ref
    from .models.weights import trained_file_local

    if a.timm is not None:
        from .models.families.timm_models import SUPPORTED, search

        found = search(a.timm, limit=200)
        for name in found:
            print(name)
        print(f"\n{len(found)} timm model(s) match {a.timm!r}. vitrep takes apart the classes {', '.join(SUPPORTED)}; "
              f"another class is refused when you use it. Untrained unless --weights trained (downloads) or FILE.")
        return 0

    rows = []
    for name, spec in SPECS.items():
        ref = make_ref(name)
        local = "n/a" if spec.trained is None else ("yes" if trained_file_local(spec) else "no")
        taps = ref.adapter.taps_summary(ref.num_blocks)
        rows.append({"name": name, "family": spec.family, "size": ref.input_size, "depth": ref.num_blocks,
                     "trained_local": local, "taps": taps, "description": spec.description,
                     "arch": dict(spec.arch_defaults)})
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<14}{'size':>5}{'depth':>6}  {'trained here':<13}description")
    for r in rows:
        print(f"{r['name']:<14}{r['size']:>5}{r['depth']:>6}  {r['trained_local']:<13}{r['description']}")
        print(f"{'':<27}taps: {r['taps']}" + (f"; options {r['arch']}" if r["arch"] else ""))
    print("\n'trained here': the standard weights file is already in its download cache. "
          "--layer also takes a plain number: encoder, block or stage k.")
    return 0


def cmd_reconstruct(a) -> int:
    from .running.memo import get_memo
    from .images import prepare as prepare_image
    from .models.pool import load_model
    from .running.runs import prepare
    from .models.taps import describe_tap

    cfg = config_from_args(a)
    job = prepare(prepare_image(_image_path(a.image), cfg.model.input_size, cfg.resize), cfg)
    out = Path(a.out or "out")
    memo = None if a.no_cache else get_memo(a.cache_dir)
    t0 = time.perf_counter()
    result = job.cached(memo)
    if result is None:
        load_model(cfg.model, cfg.device, progress=not a.quiet)  # weights problems surface before the bar
        bar = _Bar(cfg.steps, a.quiet, f"{cfg.model.name} {describe_tap(cfg.tap)}")
        try:
            result = job.run(memo, progress=bar)
        finally:
            bar.close()
    took = time.perf_counter() - t0
    write_result(result, out)
    f, b = result.final, result.baseline
    if result.from_cache:
        print(f"memo hit: result read from the disk memo in {took:.2f} s (computed earlier in {result.seconds:.1f} s)")
    verdict = "success: m_g < m_r" if result.success else "not yet: m_g >= m_r"
    print(f"{result.status}: {result.steps} steps, {result.steps_per_second:.1f} steps/s on {result.device}"
          f"{' in bf16' if result.config.precision == 'bf16' else ''}; "
          f"embedding distance {f['embedding_distance']:.4g} vs baseline {b['embedding_distance']:.4g} ({verdict}); "
          f"input distance {f['input_distance']:.4g}, PSNR {f['psnr']:.2f} dB, SSIM {f['ssim']:.3f}")
    print(f"wrote {out}/target.png, reconstruction.png, curves.csv, result.json")
    return 0


def cmd_preset(a) -> int:
    from .running.memo import get_memo
    from .figures import FIGURES, get_figure, optimizers_of

    if a.all:
        if a.name or a.list:
            raise ConfigError("--all runs every figure; give no preset name with it.")
        return _preset_all(a)
    if a.list or not a.name:
        print(f"{'figure':>6}  {'preset':<34}{'trained?':<10}{'claims':<8}{'demo here':<11}title")
        for f in sorted(FIGURES.values(), key=lambda f: f.figure):
            t = f.expected_seconds("demo")
            print(f"{f.figure:>6}  {f.name:<34}{'yes' if f.needs_trained else 'no':<10}{len(f.claims):<8}"
                  f"{'~%.0f s' % t:<11}{f.title}")
        print("\nThe default optimizer is gd, the paper's plain gradient descent; --optimizer both adds Adam beside it.")
        return 0
    fig = get_figure(a.name)
    optimizers_of(a.optimizer)  # a bad choice is one sentence before anything runs
    budget = _preset_budget(a)
    executor = _executor(a)
    memo = None if a.no_cache else get_memo(a.cache_dir)
    with executor as ex:
        _preset_one(a, fig, budget, Path(a.out or f"out/{fig.name}"), memo, ex)
    return 0


def _preset_budget(a) -> str:
    if a.quick and a.budget not in (None, "quick"):
        raise ConfigError("--quick is the same as --budget quick; give one or the other.")
    if a.steps is not None and a.steps < 1:
        raise ConfigError(f"--steps must be at least 1, not {a.steps}.")
    return "quick" if a.quick else (a.budget or "demo")


def _preset_one(a, fig, budget: str, out: Path, memo, ex, brief: bool = False) -> dict:
    """Run one figure and print what the command line prints for it (``brief``: the result lines only)."""
    from .figures import optimizers_of, run_figure
    from .figures.verdicts import METHODS

    images = a.image or None  # sample names or files; run_figure resolves them
    opts = optimizers_of(a.optimizer)
    if not brief:
        steps = sorted({(p.steps, fig.steps_for(p, budget, a.steps)) for p in fig.panels_for(budget)
                        if p.kind != "filters"})
        if steps and (budget != "full" or a.steps):
            print(f"{budget} budget{f' with --steps {a.steps}' if a.steps else ''}: step counts "
                  f"{', '.join(f'{s:,} -> {b:,}' for s, b in steps)}"
                  + ("; a pipeline check, not the paper's figure" if budget == "quick" else ""))
        left = fig.left_out(budget)
        if left:
            print(f"left out of the {budget} budget (too costly on a CPU; run --budget full): "
                  + ", ".join(p.label for p in left))
        if budget != "full" and fig.demo_note:
            print(fig.demo_note)
        print(f"optimizer: {' and '.join(METHODS[o] for o in opts)}"
              + (" (the paper's method)" if opts == ["gd"] else ""))
        expected = fig.expected_seconds(budget, len(opts), a.steps)
        if expected and ex is None:
            print(f"expected: about {expected:.0f} s on a 2-core CPU")
        if fig.needs_trained and not a.weights:
            print(f"note: {fig.name} needs trained weights ({', '.join(fig.models)}); offline, pass --weights FILE")
    t0 = time.perf_counter()
    bar = _Bar(1, a.quiet, f"figure {fig.figure}")

    def on_step(p):
        if ex is not None:
            return _cluster_step(bar, p)
        if bar.bar is not None:
            bar.bar.total = p.total
            bar.bar.set_description(f"figure {fig.figure} batch {p.batch + 1}")
            bar.to(p.step)

    try:
        summary = run_figure(fig, out, budget, a.weights, memo, a.device,
                             say=None if a.quiet else (lambda m: print(f"  {m}", file=sys.stderr)),
                             progress=on_step, images=images, optimizer=a.optimizer, steps=a.steps, executor=ex)
    finally:
        bar.close()
    took = time.perf_counter() - t0
    for opt in opts:
        mine = [r for r in summary["panels"] if r.get("optimizer") == opt and "success" in r]
        ok = sum(1 for r in mine if r["success"])
        print(f"figure {fig.figure} ({fig.name}), {budget} budget, {METHODS[opt]}: {len(mine)} reconstructions"
              + (f", {ok}/{len(mine)} reach m_g < m_r" if mine else ""))
    print(f"{len(summary['panels'])} panels in {took:.1f} s")
    if summary["variant"]:
        print(summary["variant"])
    if not fig.claims:
        print("The paper states no finding for this figure: its panels are shown without a verdict.")
    for v in summary["verdicts"]:
        print(v["line"])
    for line in summary["disagreements"]:
        print(line)
    print(f"wrote {out}/contact_sheet.png, distances.json and one PNG per panel")
    return summary


def _preset_all(a) -> int:
    """``preset --all``: every figure that needs no trained weights (all with ``--weights``), each into OUT/NAME/.

    With ``--ray`` every figure's reconstructions first go to the cluster as
    one call (so the workers share all of them out), then each figure is
    written from the memo.
    """
    from .running.memo import get_memo
    from .figures import FIGURES, figure_cells, optimizers_of, verdict_counts
    from .running.grid import run_grid

    budget = _preset_budget(a)
    optimizers_of(a.optimizer)
    figs = [f for f in sorted(FIGURES.values(), key=lambda f: f.figure) if a.weights or not f.needs_trained]
    skipped = [f for f in FIGURES.values() if f not in figs]
    root = Path(a.out or "out")
    executor = _executor(a)
    memo = None if a.no_cache else get_memo(a.cache_dir)
    print(f"{len(figs)} figures ({', '.join(str(f.figure) for f in figs)}), {budget} budget"
          + (f"; left out (need trained weights; give --weights FILE): {', '.join(str(f.figure) for f in skipped)}"
             if skipped else ""))
    t0 = time.perf_counter()
    counts = {"HELD": 0, "NOT HELD": 0, "NOT CHECKED": 0}
    with executor as ex:
        if ex is not None and memo is not None:
            loaded: dict = {}
            cells = [c for f in figs for c in figure_cells(f, budget, a.weights, a.device, a.optimizer,
                                                           a.image or None, loaded, a.steps)]
            print(f"{len(cells)} reconstructions on Ray", file=sys.stderr)
            bar = _Bar(1, a.quiet, "all figures")
            try:
                run_grid(cells, memo, progress=lambda p: _cluster_step(bar, p), executor=ex)
            finally:
                bar.close()
        for fig in figs:
            summary = _preset_one(a, fig, budget, root / fig.name, memo, ex, brief=True)
            for k, n in verdict_counts(summary).items():
                counts[k] += n
    took = time.perf_counter() - t0
    print(f"all {len(figs)} figures in {took:.1f} s ({budget} budget{', on Ray' if a.ray else ''}); verdicts: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def _parse_layers(text: str, ref) -> list[str]:
    from .models.surgery import parse_blocks

    adapter, depth = ref.adapter, ref.num_blocks
    if text.strip().lower() in ("all", ""):
        return adapter.sweep_taps(depth)
    taps = []
    for part in text.split(","):
        part = part.strip()
        if part.replace("-", "").isdigit() and "-" in part:
            taps += [adapter.parse_tap(k, depth) for k in parse_blocks(part)]
        elif part:
            taps.append(adapter.parse_tap(part, depth))
    return taps


def cmd_sweep(a) -> int:
    from .running.memo import get_memo
    from .config import make_config, options
    from .running.grid import Cell, run_grid
    from .images import prepare, to_pil
    from .models.taps import describe_tap

    base = config_from_args(a)  # validates every shared flag once
    executor = _executor(a)
    ref = base.model
    taps = _parse_layers(a.layers, ref)
    surgeries = [s.strip() or "none" for s in a.surgeries.split(";")]
    images = a.image or ["cat"]
    # every option as given; the step sizes: the user's, else each layer's calibrated default
    kw = {f.name: getattr(base, f.name) for f in options()}
    kw.update(optimizer=a.optimizer or "auto", lr_start=a.lr_start, lr_end=a.lr_end)
    cells = []
    for name in images:
        img = prepare(_image_path(name), ref.input_size, base.resize)
        for surg in surgeries:
            remove = [] if surg.lower() == "none" else [c for c in surg.split(",") if c]
            cells += [Cell(img, make_config(ref, tap, remove=remove, blocks=a.blocks, **kw),
                           {"image": name, "surgery": surg, "layer": tap}) for tap in taps]
    out = Path(a.out or "out/sweep")
    out.mkdir(parents=True, exist_ok=True)
    memo = None if a.no_cache else get_memo(a.cache_dir)
    print(f"{len(cells)} reconstructions ({len(images)} image(s) x {len(surgeries)} surgery set(s) x {len(taps)} layer(s)), "
          f"{base.steps} steps each", file=sys.stderr)
    t0 = time.perf_counter()
    bar = _Bar(base.steps, a.quiet, "sweep" if a.ray is None else "sweep (ray)")
    try:
        with executor as ex:
            grid = run_grid(cells, memo, progress=bar if ex is None else (lambda p: _cluster_step(bar, p)),
                            executor=ex)
    finally:
        bar.close()
    files = []
    for i, (c, r) in enumerate(grid.done()):
        files.append(f"{i:03d}_{Path(c.labels['image']).stem}_{c.labels['surgery'].replace(',', '+')}_{c.config.tap}.png")
        to_pil(r.image).save(out / files[-1])
    (out / "sweep.csv").write_text(grid.csv(files))

    def caption(c, r) -> str:
        f = r.final
        return (f"{Path(c.labels['image']).stem} {c.labels['surgery']}\n{describe_tap(c.config.tap)}  m_g "
                f"{f['embedding_distance']:.3g}\nm_r {r.baseline['embedding_distance']:.3g}  |a-a_g| {f['input_distance']:.3g}")

    grid.sheet(f"{ref.label()}: {base.steps} steps", cols=len(taps), caption=caption).save(out / "contact_sheet.png")
    print(f"{len(grid.done())} reconstructions in {time.perf_counter() - t0:.1f} s; wrote {out}/contact_sheet.png and sweep.csv")
    return 0


def cmd_generate(a) -> int:
    from .running.memo import get_memo
    from .generate import make_generate_config, run_generate, search_classes
    from .images import to_pil
    from .models.registry import make_ref

    if a.search:
        for i, n in search_classes(a.search, limit=50):
            print(f"{i:>4}  {n}")
        return 0
    if a.cls is None:
        raise ConfigError("Choose a class with --class NAME (or an index 0-999); --search TEXT lists matches.")
    arch = {k: getattr(a, k) for k in ARCH_KEYS}
    ref = make_ref(a.model or "vit_b_32", a.weights or "trained", seed=a.model_seed or 0, swaps=a.swap or "",
                   swap_from=a.swap_from or "trained", **arch)
    kw = {k: v for k, v in (("lr_start", a.lr), ("lr_end", a.lr_end), ("jitter", a.jitter),
                            ("jitter_start", a.jitter_start)) if v is not None}
    cfg = make_generate_config(ref, a.cls, steps=a.steps, seed=a.seed, normalize_grad=not a.raw_grad,
                               device=a.device or "auto", **kw)
    from .models.pool import load_model

    load_model(ref, cfg.device)
    out = Path(a.out or "out/generate")
    out.mkdir(parents=True, exist_ok=True)
    bar = _Bar(cfg.steps, a.quiet, f"class {cfg.class_index}")
    try:
        g = run_generate(cfg, None if a.no_cache else get_memo(a.cache_dir),
                         progress=lambda p: bar.to(p.step, logit=f"{p.rows[0]['target_logit']:.3g}"))
    finally:
        bar.close()
    to_pil(g.image).save(out / "generated.png")
    for s, im in g.stages:
        to_pil(im).save(out / f"stage_{s:05d}.png")
    (out / "result.json").write_text(json.dumps({"config": cfg.to_dict(), "status": g.status, "steps": g.steps,
                                                 "seconds": g.seconds, "top5": g.top5, "margin": g.margin,
                                                 "curves": g.curves}, indent=2) + "\n")
    print(f"{g.status}: class {cfg.class_index} logit {g.curves['target_logit'][-1]:.3g}, best other "
          f"{g.curves['best_other_logit'][-1]:.3g}; top-5 {', '.join(n for _, n, _ in g.top5)}")
    print(f"wrote {out}/generated.png, stage_*.png, result.json")
    return 0


def cmd_filters(a) -> int:
    from .filters import filter_grid
    from .images import to_pil
    from .models.pool import load_model
    from .models.registry import make_ref

    arch = {k: getattr(a, k) for k in ARCH_KEYS}
    name = a.model or "vit_b_32"
    out = Path(a.out or "out/filters")
    out.mkdir(parents=True, exist_ok=True)
    for w in dict.fromkeys(["untrained", a.weights or "untrained"]):
        ref = make_ref(name, w, seed=a.model_seed or 0, **arch)
        g = filter_grid(load_model(ref, a.device or "auto"))
        tag = w if w in ("trained", "untrained") else Path(w).stem
        to_pil(g.image(scale=a.scale)).save(out / f"filters_{tag}.png")
        print(f"{tag}: {g.count} filters of {g.tiles.shape[1]}x{g.tiles.shape[2]} -> {out}/filters_{tag}.png")
    return 0


def cmd_condition(a) -> int:
    from .running.memo import get_memo
    from .conditioning import compare_table, make_condition_config, plot_spectra, reading, run_condition
    from .config import make_config
    from .images import prepare
    from .models.pool import load_model

    base = config_from_args(argparse.Namespace(**{**vars(a), "config": None}))  # model, tap, surgery, seed
    sets = [s.strip() for s in a.compare.split(";")] if a.compare else [None]
    recons, labels = [], []
    for s in sets:
        if s is None:
            recons.append(base)
            labels.append(base.surgery.describe())
        else:
            remove = [] if s.lower() in ("none", "") else [c for c in s.split(",") if c]
            recons.append(make_config(base.model, base.tap, remove=remove, blocks=a.blocks, pos_embed=base.pos_embed,
                                      device=base.device))
            labels.append("none" if not remove else s)
    cfgs = [make_condition_config(r, a.k, a.iterations, a.probes, a.seed) for r in recons]
    image = prepare(_image_path(a.image), base.model.input_size, base.resize)
    load_model(base.model, base.device, progress=not a.quiet)  # weights and memory problems: one sentence first
    memo = None if a.no_cache else get_memo(a.cache_dir)
    out = Path(a.out or "out/condition")
    out.mkdir(parents=True, exist_ok=True)
    steps = cfgs[0].lanczos_steps(10 ** 9)
    bar = _Bar(steps, a.quiet, f"{base.model.name} {base.tap} spectrum")
    t0 = time.perf_counter()
    try:
        spectra = run_condition(image, cfgs, memo, progress=lambda p: bar.to(
            p.step, sigma_max=f"{p.rows[0]['sigma_max']:.4g}") if p.rows else None)
    finally:
        bar.close()
    title = f"{base.model.label()}, {base.tap}: Jacobian at {Path(a.image).stem}"
    plot_spectra(spectra, labels, out / "spectrum.png", title)
    if len(spectra) == 1:
        doc = spectra[0].summary()
    else:
        table = compare_table(spectra, labels)
        doc = {"rows": [{"removed": lab, **s.summary()} for lab, s in zip(labels, spectra)], "table": table}
        import csv

        with open(out / "compare.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    (out / "condition.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'removed':<22}{'sigma_max':>12}{'sigma_min <=':>14}{'kappa >=':>11}{'eff. rank':>11}{'gain':>9}"
          f"{'converged':>11}")
    for lab, s in zip(labels, spectra):
        top, bottom = s.converged()
        print(f"{lab[:21]:<22}{s.sigma_top[0]:>12.4g}{s.sigma_bottom[0]:>14.4g}{s.condition_estimate:>11.4g}"
              f"{s.effective_rank:>11.4g}{(s.gain if s.gain is not None else float('nan')):>9.3g}"
              f"{f'{top}/{len(s.sigma_top)}, {bottom}/{len(s.sigma_bottom)}':>11}")
    print(f"J is {spectra[0].output_dim:,} x {spectra[0].input_dim:,} (outputs x inputs); "
          + (f"its null space has at least {spectra[0].null_dim_min:,} dimensions. " if spectra[0].null_dim_min else "")
          + f"{spectra[0].iterations} Lanczos steps in {time.perf_counter() - t0:.1f} s"
          + (" (from the memo)" if all(s.from_cache for s in spectra) else ""))
    print("sigma_min is an upper bound (a Ritz value) and kappa a lower bound; 'converged' counts values known to 1%.")
    if len(spectra) > 1:
        print(reading(spectra, labels))
    print(f"wrote {out}/condition.json, spectrum.png" + (", compare.csv" if len(spectra) > 1 else ""))
    return 0


def cmd_layernorm(a) -> int:
    from .layernorm import PAGE_VECTORS, explain, parse_vector, same_output

    vectors = [parse_vector(v) for v in a.vectors] or list(PAGE_VECTORS)
    for r in explain(vectors):
        print(f"{str([round(x, 4) for x in r.vector]):<28} mean {r.mean:8.4f}  std {r.std:8.4f}  ->  "
              f"{[round(x, 4) for x in r.output]}")
    if same_output(vectors):
        print("All map to one output: the mean and the spread are gone, so layer norm cannot be inverted.")
    else:
        print("These differ after layer norm: they are not shifts and scalings of one another.")
    return 0


COMMANDS = {"models": cmd_models, "reconstruct": cmd_reconstruct, "preset": cmd_preset, "sweep": cmd_sweep,
            "generate": cmd_generate, "filters": cmd_filters, "condition": cmd_condition, "layernorm": cmd_layernorm}


def _check_out(out) -> None:
    """``--out`` must be a folder (or not exist yet): a file there is one sentence before anything runs."""
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; give a folder to write into.")


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_out(getattr(args, "out", None))
        return COMMANDS[args.command](args)
    except VitrepError as exc:
        print(f"vitrep: {exc.say('cli')}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written, a disk that is full: one sentence, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vitrep: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vitrep: stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
