"""What the commands share: argument groups, the progress bar, the Ray executor, the image, the memo and
the config built from flags."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from ..models.registry import ARCH_KEYS


def add_model_args(p: argparse.ArgumentParser) -> None:
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


def add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reconstruction")
    g.add_argument("--layer", default=None, help="a number (encoder/block/stage k) or a tap: stem, embed, only-encoder-3, norm, logits, layer3.2 ...")
    g.add_argument("--remove", default=None, help="components to remove, e.g. attention,mlp,ln_1,ln_2,residual_1,residual_2")
    g.add_argument("--blocks", default=None, help="blocks the removal applies to, e.g. 1-4,7 (default all)")
    add_option_flags(g)


def add_option_flags(g) -> None:
    """One flag per option of :class:`vitrep.config.ReconstructConfig`: name, default and help from its field."""
    from ..config import options

    for f in options():
        if f.name == "device":  # a model option (``add_model_args``)
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


def add_io_args(p: argparse.ArgumentParser, image: bool = True) -> None:
    if image:
        p.add_argument("--image", default=None, help="an image file, or a bundled sample: cat, coffee, astronaut, rocket")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--cache-dir", default=None, help="memo folder (default $VITREP_CACHE_DIR or ~/.cache/vitrep)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the disk memo")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_ray_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray (several processes, GPUs or machines; pip install -r requirements-ray.txt)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the reconstructions on Ray workers: alone, a local Ray on this machine; with an "
                        "ADDRESS (auto, host:6379, ray://host:10001), that cluster")
    g.add_argument("--ray-gpus", type=float, default=None, metavar="FRACTION",
                   help="GPUs per Ray worker, e.g. 0.5 for two workers a GPU (default 1 where the cluster has GPUs)")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: one per GPU, or one per CPU core)")


def image_path(text: Optional[str]) -> str:
    """``--image``, checked to be given (the experiment resolves a file or a bundled sample's name)."""
    if not text:
        raise ConfigError("Give an image with --image PATH (or a bundled sample: cat, coffee, astronaut, rocket).")
    return text


def open_memo(a: argparse.Namespace):
    """The disk memo of ``--cache-dir`` (default folder), or None with ``--no-cache``."""
    from ..running.memo import get_memo

    return None if a.no_cache else get_memo(a.cache_dir)


def make_ref_from_args(a: argparse.Namespace, weights: str = "untrained", swaps: bool = True):
    """The model the flags name (``weights``: the default where ``--weights`` is not given)."""
    from ..models.registry import make_ref

    arch = {k: getattr(a, k) for k in ARCH_KEYS}
    extra = {"swaps": a.swap or "", "swap_from": a.swap_from or "trained"} if swaps else {}
    return make_ref(a.model or "vit_b_32", a.weights or weights, seed=a.model_seed or 0, **extra, **arch)


def config_from_args(a: argparse.Namespace):
    """Merge ``--config`` (if any), explicit flags and defaults into a validated config."""
    from ..config import ReconstructConfig, make_config, options, read_config_file
    from ..models.registry import make_ref

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


class Bar:
    """A tqdm progress bar on stderr fed by the engine's callback; none with ``--quiet``.  It appears at the
    first report, so a run the memo answers, or one that fails loading its model, shows none."""

    def __init__(self, total: int, quiet: bool, label: str) -> None:
        self.total, self.quiet, self.label = total, quiet, label
        self.bar = None

    def __call__(self, p) -> None:
        """A reconstruction's :class:`~vitrep.result.Progress`: the step, m_g and PSNR of its first row."""
        row = p.rows[0] if p.rows else {}
        self.to(p.step, **({"m_g": f"{row['embedding_distance']:.3g}", "psnr": f"{row['psnr']:.1f}"} if row else {}))

    def to(self, step: int, total: Optional[int] = None, label: Optional[str] = None, **postfix) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total or self.total, desc=label or self.label, unit="step", file=sys.stderr,
                            dynamic_ncols=True)
        else:
            if total is not None:
                self.bar.total = total
            if label:
                self.bar.set_description(label)
        self.bar.update(step - self.bar.n)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def cluster(self, p) -> None:
        """A Ray run's :class:`~vitrep.running.distributed.ClusterProgress` (one update per finished chunk)."""
        left = f"{p.seconds_left:.0f}s" if p.seconds_left == p.seconds_left else "?"
        self.to(p.step, total=p.total, chunks=f"{p.chunks_done}/{p.chunks_total}",
                rows=f"{p.rows_done}/{p.rows_total}", rate=f"{p.steps_per_second:.1f} steps/s", left=left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def executor(a: argparse.Namespace):
    """A :class:`~vitrep.running.distributed.RayExecutor` for ``--ray`` (a context manager), else a null context."""
    if getattr(a, "ray", None) is None:
        if getattr(a, "ray_gpus", None) is not None or getattr(a, "ray_workers", None) is not None:
            raise ConfigError("--ray-gpus and --ray-workers go with --ray.")
        return contextlib.nullcontext(None)
    from ..running.distributed import RayExecutor

    return RayExecutor(address=a.ray, workers=a.ray_workers, gpus_per_worker=a.ray_gpus)


def check_out(out) -> None:
    """``--out`` must be a folder (or not exist yet): a file there is one sentence before anything runs."""
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; give a folder to write into.")
