"""The command line: ``python -m vitrep COMMAND``.

Every user error ends with one sentence on stderr and exit status 2; no
traceback.  Long runs show a progress bar on stderr; results go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from .errors import ConfigError, VitrepError


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="model name (see `python -m vitrep models`); default vit_b_32")
    g.add_argument("--weights", default=None, help="untrained (default), trained, or a checkpoint FILE")
    g.add_argument("--model-seed", type=int, default=None, help="initialisation seed of an untrained model (default 0)")
    for k in ("patch", "width", "depth", "heads", "size"):
        g.add_argument(f"--{k}", type=int, default=None, help=f"{k} of a configurable model (vit_custom, mixer, ffvit)")
    g.add_argument("--swap", default=None, help="components to copy in, e.g. stem,ln_1 or any state_dict name")
    g.add_argument("--swap-from", default=None, help="where swapped tensors come from: trained (default), untrained or FILE")
    g.add_argument("--device", default=None, help="auto (default: CUDA if present), cpu or cuda")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reconstruction")
    g.add_argument("--layer", default=None, help="a number (encoder/block/stage k) or a tap: stem, embed, only-encoder-3, norm, logits, layer3.2 ...")
    g.add_argument("--remove", default=None, help="components to remove, e.g. attention,mlp,ln_1,ln_2,residual_1,residual_2")
    g.add_argument("--blocks", default=None, help="blocks the removal applies to, e.g. 1-4,7 (default all)")
    pe = g.add_mutually_exclusive_group()
    pe.add_argument("--pos-embed", dest="pos_embed", action="store_true", default=None, help="add the positional embedding as the model does (default)")
    pe.add_argument("--no-pos-embed", dest="pos_embed", action="store_false", help="leave it out, as the page's figures did")
    g.add_argument("--steps", type=int, default=None, help="gradient descent steps (default 300)")
    g.add_argument("--lr", dest="lr_start", type=float, default=None, help="learning rate at the first step (default 1.0)")
    g.add_argument("--lr-end", type=float, default=None, help="learning rate at the last step (default 0.05)")
    g.add_argument("--loss", choices=("l1", "l2"), default=None, help="l1: scale*sum|t-O| (the page's), l2: scale*sum (t-O)^2")
    g.add_argument("--loss-scale", type=float, default=None, help="the loss's scale s (default 0.05)")
    g.add_argument("--blur", dest="blur_start", type=float, default=None, help="3x3 Gaussian sigma at the first step (default 2.4; 0 = off)")
    g.add_argument("--blur-end", type=float, default=None, help="sigma at the last step (default 0.4)")
    g.add_argument("--clamp", action="store_true", default=None, help="clamp the image to [0,1] after every step")
    g.add_argument("--normalize", action="store_true", default=None, help="feed the model ImageNet-normalised pixels (the page fed raw [0,1])")
    g.add_argument("--init-mean", type=float, default=None, help="mean of the starting noise (default 0.7)")
    g.add_argument("--init-std", type=float, default=None, help="std of the starting noise (default 0.05 = 1/20)")
    g.add_argument("--seed", type=int, default=None, help="seed of the starting noise and the a' baseline (default 0)")
    g.add_argument("--report-every", type=int, default=None, help="record curves every N steps (default 10)")
    g.add_argument("--resize", choices=("crop", "stretch"), default=None, help="crop: keep proportions, centre crop (default); stretch: the page's plain resize")


def _add_io_args(p: argparse.ArgumentParser, image: bool = True) -> None:
    if image:
        p.add_argument("--image", default=None, help="an image file, or a bundled sample: cat, coffee, astronaut, rocket")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--cache-dir", default=None, help="memo folder (default $VITREP_CACHE_DIR or ~/.cache/vitrep)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the disk memo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vitrep", description="See what vision models keep of their input.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    m = sub.add_parser("models", help="list models, sizes, taps and whether trained weights are on this machine")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    r = sub.add_parser("reconstruct", help="reconstruct an image from one layer's output")
    r.add_argument("--config", default=None, help="a config or result.json to rerun; flags given override it")
    _add_io_args(r)
    _add_model_args(r)
    _add_run_args(r)
    return p


# --- helpers -------------------------------------------------------------------------------------

def _image_path(text: Optional[str]) -> Path:
    from .images import SAMPLES, sample_path

    if not text:
        raise ConfigError("Give an image with --image PATH (or a bundled sample: cat, coffee, astronaut, rocket).")
    if text in SAMPLES and not Path(text).exists():
        return sample_path(text)
    return Path(text).expanduser()


def config_from_args(a: argparse.Namespace):
    """Merge ``--config`` (if any), explicit flags and defaults into a validated config."""
    from .models import ModelRef, make_ref
    from .reconstruct import ReconstructConfig, make_config

    base: dict = {}
    if getattr(a, "config", None):
        try:
            doc = json.loads(Path(a.config).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{a.config} is not a readable JSON config.") from exc
        base = ReconstructConfig.from_dict(doc.get("config", doc)).to_dict()
    bm = base.get("model", {})
    pick = lambda flag, key, default: flag if flag is not None else bm.get(key, default)  # noqa: E731
    arch = {k: pick(getattr(a, k), k, None) for k in ("patch", "width", "depth", "heads", "size")}
    swaps = a.swap if a.swap is not None else ",".join(bm.get("swaps", ()))
    ref = make_ref(pick(a.model, "name", "vit_b_32"), pick(a.weights, "weights", "untrained"),
                   seed=pick(a.model_seed, "seed", 0), swaps=swaps, swap_from=pick(a.swap_from, "swap_from", "trained"),
                   **arch)
    defaults = ReconstructConfig(model=ref)
    fields = ("pos_embed", "steps", "lr_start", "lr_end", "loss", "loss_scale", "blur_start", "blur_end", "clamp",
              "normalize", "init_mean", "init_std", "seed", "report_every", "device", "resize")
    kw = {f: (getattr(a, f) if getattr(a, f, None) is not None else base.get(f, getattr(defaults, f))) for f in fields}
    surg = base.get("surgery") or {}
    remove = a.remove if a.remove is not None else ",".join(surg.get("remove", ()))
    blocks = a.blocks if a.blocks is not None else (",".join(map(str, surg["blocks"])) if surg.get("blocks") else None)
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
        if self.bar is not None:
            self.bar.update(p.step - self.bar.n)
            row = p.rows[0] if p.rows else {}
            if row:
                self.bar.set_postfix(m_g=f"{row['embedding_distance']:.3g}", psnr=f"{row['psnr']:.1f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def write_result(result, out: Path) -> None:
    from .images import to_pil

    out.mkdir(parents=True, exist_ok=True)
    to_pil(result.target).save(out / "target.png")
    to_pil(result.image).save(out / "reconstruction.png")
    (out / "curves.csv").write_text(result.curves_csv())
    (out / "result.json").write_text(json.dumps(result.summary(), indent=2) + "\n")


# --- commands ------------------------------------------------------------------------------------

def cmd_models(a) -> int:
    from .models import SPECS, make_ref, trained_file_local

    rows = []
    for name, spec in SPECS.items():
        ref = make_ref(name)
        local = "n/a" if spec.trained is None else ("yes" if trained_file_local(spec) else "no")
        unit = {"vit": "encoder", "ffvit": "encoder", "mixer": "block", "resnet": "layer"}[spec.family]
        if spec.family == "resnet":
            taps = "conv1, stem, layer1-4, layerS.B, pool, logits"
        else:
            pre = "stem, embed" if spec.family != "mixer" else "stem"
            taps = f"{pre}, {unit}-1..{ref.num_blocks}, only-{unit}-k, norm, logits"
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
    from .cache import get_memo
    from .images import prepare
    from .models import load_model
    from .reconstruct import Result, cache_key, run
    from .taps import describe_tap

    cfg = config_from_args(a)
    image = prepare(_image_path(a.image), cfg.model.input_size, cfg.resize)
    out = Path(a.out or "out")
    memo = None if a.no_cache else get_memo(a.cache_dir)
    t0 = time.perf_counter()
    result = memo.get(cache_key(image, cfg), Result.from_bytes) if memo else None
    if result is None:
        load_model(cfg.model, cfg.device, progress=not a.quiet)  # weights problems surface before the bar
        bar = _Bar(cfg.steps, a.quiet, f"{cfg.model.name} {describe_tap(cfg.tap)}")
        try:
            result = run(image, cfg, memo, progress=bar)
        finally:
            bar.close()
    took = time.perf_counter() - t0
    write_result(result, out)
    f, b = result.final, result.baseline
    if result.from_cache:
        print(f"memo hit: result read from the disk memo in {took:.2f} s (computed earlier in {result.seconds:.1f} s)")
    verdict = "success: m_g < m_r" if result.success else "not yet: m_g >= m_r"
    print(f"{result.status}: {result.steps} steps, {result.steps_per_second:.1f} steps/s on {result.device}; "
          f"embedding distance {f['embedding_distance']:.4g} vs baseline {b['embedding_distance']:.4g} ({verdict}); "
          f"input distance {f['input_distance']:.4g}, PSNR {f['psnr']:.2f} dB")
    print(f"wrote {out}/target.png, reconstruction.png, curves.csv, result.json")
    return 0


COMMANDS = {"models": cmd_models, "reconstruct": cmd_reconstruct}


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VitrepError as exc:
        print(f"vitrep: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitrep: stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
