"""A unit visualisation: its config, the descent, its result, the memo, and the top units of an image.

One run optimises one image per objective (a batch: row i maximises
objective i), with Adam on the parameterisation's tensor (:mod:`.param`),
the robustness transforms each step, and the image measured untransformed
at each report step and at the end.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Optional

import numpy as np
import torch

from .. import fields as vf
from .. import limits
from ..errors import ConfigError
from ..images import content_hash, to_uint8
from ..models.registry import ModelRef, check_ref, make_ref, resolve_device
from ..models.surgery import Surgery, make_surgery
from ..packing import pack, unpack
from ..result import Progress, ProgressFn
from ..running.memo import Memo, make_key, torch_release
from .objectives import parse
from .param import PARAMS, Robustness, make_param
from .sites import activations, check_sites

MAX_ROWS = 64  # objectives in one run: a grid of units, not a dataset
PUBLIC_MAX_ROWS = 16
PUBLIC_UNIT_STEPS = limits.PUBLIC_MAX_STEPS * PUBLIC_MAX_ROWS // 4  # units x steps of one public run: 4,000


@dataclass(frozen=True)
class UnitsConfig:
    """What to visualise and how: one row per objective (their text form, :func:`vitrep.units.objectives.parse`)."""

    model: ModelRef
    objectives: tuple[str, ...]
    surgery: Surgery = Surgery()
    pos_embed: bool = True
    param: str = "fourier"  # fourier | pixel
    steps: int = 256
    lr: float = 0.05  # Adam's step (lucent's default)
    jitter: int = 8  # pixels
    scale: float = 0.1  # the image is scaled by 1 +- this
    rotate: float = 10.0  # degrees, either way
    blur: bool = False  # the write-up's blur after each step (pixel parameterisation only)
    seed: int = 0
    report_every: int = 16
    device: str = "auto"

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict(), "objectives": list(self.objectives),
                "surgery": self.surgery.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "UnitsConfig":
        vf.mapping(d, "The units config", known=[f.name for f in fields(cls)])
        d = dict(d)
        model = ModelRef.from_dict(d.pop("model"))
        surgery = Surgery.from_dict(d.pop("surgery", None))
        return cls(model=model, surgery=surgery, objectives=tuple(d.pop("objectives")), **d)


def _checks() -> dict:
    whole, num = vf.whole_in, vf.number_in
    return {"steps": whole(1, limits.MAX_STEPS), "lr": num(0.0, 100.0), "jitter": whole(0, 256),
            "scale": num(0.0, 0.9), "rotate": num(0.0, 180.0), "blur": vf.flag, "pos_embed": vf.flag,
            "seed": whole(0, limits.MAX_SEED), "report_every": whole(1, limits.MAX_STEPS),
            "device": lambda v, n: vf.text(v, n, max_len=16)}


def validate(c: UnitsConfig) -> UnitsConfig:
    """Every field's type and bounds, the objectives' form, public mode's limits; a ConfigError names the bad one."""
    for name, check in _checks().items():
        check(getattr(c, name), name)
    if c.param not in PARAMS:
        raise ConfigError(f"The image parameterisation is {' or '.join(PARAMS)}, not {str(c.param)[:20]!r}.")
    if c.blur and c.param != "pixel":
        raise ConfigError("The write-up's blur acts on pixels: choose the pixel image for it, or leave blur off.")
    if not c.objectives or len(c.objectives) > MAX_ROWS:
        raise ConfigError(f"Choose 1 to {MAX_ROWS} units (objectives) for one run, not {len(c.objectives)}.")
    for t in c.objectives:
        parse(t)
    if limits.public_mode():
        rows = len(c.objectives)
        if rows > PUBLIC_MAX_ROWS or rows * c.steps > PUBLIC_UNIT_STEPS:
            raise ConfigError(f"On this public server a units run takes at most {PUBLIC_MAX_ROWS} units and "
                              f"{PUBLIC_UNIT_STEPS:,} unit-steps in all "
                              f"({rows} x {c.steps:,} asked); run vitrep on your own machine for more.")
    resolve_device(c.device)
    return c


def make_units_config(model: str | ModelRef = "vit_b_32", objectives=("mlp(6, 0)",), *, weights: str = "untrained",
                      remove=(), blocks=None, **kw) -> UnitsConfig:
    """A checked config: the model (:func:`check_ref`), each objective read against it, the surgery's names."""
    ref = model if isinstance(model, ModelRef) else make_ref(model, weights)
    check_ref(ref)
    depth = ref.num_blocks
    surgery = make_surgery(ref.adapter, remove, blocks, ref.adapter.surgery_blocks(depth))
    shape = _Shape(ref.adapter, depth)  # layer names read as the model's adapter reads them, before any load
    texts = tuple(parse(o, shape).text if isinstance(o, str) else o.text
                  for o in ([objectives] if isinstance(objectives, str) else objectives))
    return validate(UnitsConfig(model=ref, objectives=texts, surgery=surgery, **kw))


@dataclass(frozen=True)
class _Shape:
    """What :func:`vitrep.units.objectives.parse` asks of a model: its adapter and depth."""

    adapter: object
    depth: int


def unit_range(text: str | int) -> list[int]:
    """``"0-15"`` / ``"3,7,9"`` / ``5`` -> unit indices (at most :data:`MAX_ROWS`)."""
    out: list[int] = []
    try:
        for part in str(text).replace(" ", "").split(","):
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b or a)
            if lo < 0 or hi < lo or hi - lo >= MAX_ROWS:
                raise ValueError
            out += [u for u in range(lo, hi + 1) if u not in out]
    except ValueError:
        raise ConfigError(f"Units {str(text)[:40]!r} are not a list like '0-15' or '3,7,9' of numbers from 0.") from None
    if len(out) > MAX_ROWS:
        raise ConfigError(f"Choose at most {MAX_ROWS} units for one run, not {len(out)}.")
    return out


@dataclass
class Units:
    """A finished (or stopped) units run: one image and one score curve per objective."""

    config: UnitsConfig
    status: str
    steps: int
    seconds: float
    images: list  # uint8 (H, W, 3) per objective
    curves: list  # per objective: {"step": [...], "score": [...]}
    start_scores: list = field(default_factory=list)  # each objective at the start image
    from_cache: bool = False

    @property
    def scores(self) -> list[float]:
        return [c["score"][-1] if c["score"] else float("nan") for c in self.curves]

    def to_bytes(self) -> bytes:
        meta = {"config": self.config.to_dict(), "status": self.status, "steps": self.steps, "seconds": self.seconds,
                "curves": self.curves, "start_scores": self.start_scores}
        return pack(meta, {f"image{i}": im for i, im in enumerate(self.images)})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Units":
        meta, z = unpack(data)
        config = UnitsConfig.from_dict(meta.pop("config"))
        images = [z[f"image{i}"] for i in range(len(config.objectives))]
        return cls(config=config, images=images, from_cache=True, **meta)

    def to_json(self) -> str:
        return json.dumps({"config": self.config.to_dict(), "status": self.status, "steps": self.steps,
                           "seconds": self.seconds, "scores": self.scores, "start_scores": self.start_scores,
                           "curves": self.curves}, indent=2) + "\n"


def _objectives(c: UnitsConfig, lm, image: Optional[torch.Tensor]) -> tuple[list, frozenset]:
    """The config's objectives read against ``lm``, a match's target bound; and every site they read."""
    objs = [parse(t, lm) for t in c.objectives]
    sites = frozenset().union(*(o.sites() for o in objs))
    check_sites(lm, sites)
    if any(o.needs_image for o in objs):
        if image is None:
            raise ConfigError("match(...) reconstructs an image: choose the image to match.")
        with torch.no_grad():
            target = activations(lm, image.to(lm.device), sites, c.surgery, c.pos_embed)
        for o in objs:
            o.bind(lambda s: target[s])
    return objs, sites


def _scores(objs, acts) -> torch.Tensor:
    """Row i's score under objective i."""
    return torch.stack([o(acts)[i] for i, o in enumerate(objs)])


def visualise(c: UnitsConfig, image: Optional[torch.Tensor] = None, progress: Optional[ProgressFn] = None,
              lm=None) -> Units:
    """Maximise each objective on its own row; ``progress(Progress)`` at each report step may return True to stop."""
    import time

    from ..models.pool import load_model

    lm = lm or load_model(c.model, c.device)
    objs, sites = _objectives(c, lm, image)
    rows, S = len(objs), lm.size
    param = make_param(c.param, rows, S, c.seed, c.steps, c.blur, lm.device)
    opt = torch.optim.Adam(param.params, lr=c.lr)
    robust = Robustness(S, c.jitter, c.scale, c.rotate, c.seed)
    curves = [{"step": [], "score": []} for _ in objs]
    t0, status, start, last = time.perf_counter(), "done", [], None
    for n in range(c.steps + 1):
        report = n % c.report_every == 0 or n == c.steps
        if report:
            with torch.no_grad():
                img = param.image()
                s = _scores(objs, activations(lm, img, sites, c.surgery, c.pos_embed)).tolist()
            start = start or s
            last = [to_uint8(img[i]) for i in range(rows)]
            for i, v in enumerate(s):
                curves[i]["step"].append(n)
                curves[i]["score"].append(v)
            if progress is not None and progress(Progress(n, c.steps, time.perf_counter() - t0,
                                                          [{"step": n, "score": v} for v in s], last)) and n < c.steps:
                status = "stopped"
                break
        if n == c.steps:
            break
        opt.zero_grad(set_to_none=True)
        loss = -_scores(objs, activations(lm, robust(param.image(), n), sites, c.surgery, c.pos_embed)).sum()
        if not torch.isfinite(loss):
            status = f"diverged at step {n}"
            break
        loss.backward()
        opt.step()
        param.after_step(n)
    return Units(c, status, curves[0]["step"][-1], time.perf_counter() - t0, last, curves, start)


def units_key(c: UnitsConfig, image: Optional[torch.Tensor], identity: str) -> str:
    d = c.to_dict()
    d["device"] = resolve_device(c.device).type
    return make_key("units", config=d, weights=identity, torch=torch_release(),
                    image=None if image is None else content_hash(image))


def run_units(c: UnitsConfig, image: Optional[torch.Tensor] = None, memo: Optional[Memo] = None,
              progress: Optional[ProgressFn] = None, on_wait=None, queue_limit: Optional[int] = None) -> Units:
    """:func:`visualise` through the disk memo, queued per device like any run (a stopped run is not kept)."""
    from ..models.pool import load_model
    from ..running.runs import device_lock

    lm = load_model(c.model, c.device)

    def compute() -> Units:
        with device_lock(c.device, on_wait, queue_limit):
            return visualise(c, image, progress, lm)

    if memo is None:
        return compute()
    return memo.get_or_compute(units_key(c, image, lm.identity), compute, Units.to_bytes, Units.from_bytes,
                               keep=lambda r: r.status == "done")


def top_units(lm, image: torch.Tensor, kind: str, layer, k: int = 16, surgery: Surgery = Surgery(),
              pos_embed: bool = True) -> list[tuple[int, float]]:
    """The ``k`` units of ``kind`` (channel, neuron, mlp, head) at ``layer`` most active on ``image``:
    (unit, mean activation; a head's: its mean squared output), highest first."""
    from .objectives import TapSite, UnitSite, _pool

    if kind in ("mlp", "head"):
        site = UnitSite(int(layer), kind)
        check_sites(lm, [site])
    else:
        site = TapSite(lm.adapter.parse_tap(layer, lm.depth))
    with torch.no_grad():
        x = activations(lm, image.to(lm.device), [site], surgery, pos_embed)[site]
    per_unit = x.pow(2).sum(-1).mean(1)[0] if kind == "head" else _pool(x)[0]
    values, idx = torch.topk(per_unit, min(k, per_unit.numel()))
    return [(int(i), float(v)) for v, i in zip(values, idx)]


def with_steps(c: UnitsConfig, steps: int) -> UnitsConfig:
    """The same run, longer (or shorter): a new memo entry."""
    return validate(replace(c, steps=steps))


def as_grid(u: Units) -> np.ndarray:
    """The images side by side in rows of up to 8, for a contact sheet."""
    ims = u.images
    cols = min(8, len(ims))
    h, w, _ = ims[0].shape
    out = np.full(((len(ims) + cols - 1) // cols * (h + 4), cols * (w + 4), 3), 255, np.uint8)
    for i, im in enumerate(ims):
        r, col = divmod(i, cols)
        out[r * (h + 4):r * (h + 4) + h, col * (w + 4):col * (w + 4) + w] = im
    return out
