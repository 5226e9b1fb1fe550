"""Class input generation: an input a trained model takes for class i (the paper's method).

Start from ``a_0 ~ N(0.7, 1/20)`` and descend ``|C - logit_i(a)|`` (C = 200),
blurring after every step with a 3x3 Gaussian whose sigma decays 2.4 -> 0.8.
By default each step is normalised by the gradient's mean magnitude, so the
learning rate is in pixel units whatever the model's logit scale
(``normalize_grad=False`` is the paper's raw step).  From step
``jitter_start`` (~200) on, the canvas is enlarged by ``jitter``
pixels and each step optimises one random model-sized crop: only the crop is
updated and blurred (sigma 1.5 -> 0.4), the rest of the canvas is unchanged.
The result is the canvas; its scores are read on the canvas resized to the
model's input.  Needs trained weights to mean anything.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import numpy as np
import torch

from . import fields as vf
from . import limits
from .running.memo import Memo, make_key, torch_release
from .packing import pack, unpack
from .errors import ConfigError
from .images import to_uint8
from .models.weights import LoadedModel, imagenet_classes, weights_identity
from .models.registry import ModelRef, check_ref, make_ref, resolve_device
from .models.pool import load_model
from .descent.loop import BlowupGuard, Rows, descend
from .descent.objectives import ClassLogit
from .descent.param import JitterCanvas, noise_start
from .descent.record import Recorder
from .descent.steps import Schedule, Stepper, Update, linear
from .result import ProgressFn
from .running.runs import device_lock
from .models.taps import tap_path


@dataclass(frozen=True)
class GenerateConfig:
    model: ModelRef
    class_index: int
    steps: int = 400
    target: float = 200.0  # C
    lr_start: float = 0.05
    lr_end: float = 0.02
    blur_start: float = 2.4  # first phase: 2.4 -> 0.8
    blur_mid: float = 0.8
    jitter_blur_start: float = 1.5  # jitter phase: 1.5 -> 0.4
    blur_end: float = 0.4
    jitter_start: int = 200
    jitter: int = 32  # canvas = size + jitter
    normalize: bool = True
    normalize_grad: bool = True  # step = lr * g / mean|g| (pixel units); False = the paper's raw lr * g
    init_mean: float = 0.7
    init_std: float = 0.05
    seed: int = 0
    report_every: int = 20
    device: str = "auto"

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "GenerateConfig":
        """A config from JSON values, every field's type and bounds checked (one sentence naming a bad one)."""
        vf.mapping(d, "The class-image config", known=[f.name for f in fields(cls)])
        d = dict(d)
        if "model" not in d:
            raise ConfigError("The class-image config has no model.")
        model = ModelRef.from_dict(d.pop("model"))
        for name, value in d.items():
            GENERATE_CHECKS[name](value, name)
        return cls(model=model, **d)


# Every field's type and bounds (of every mode; public mode's step limit comes on top).
GENERATE_CHECKS = {
    "class_index": vf.whole_in(0, 999), "steps": vf.whole_in(1, limits.MAX_STEPS),
    "target": vf.number_in(-1e6, 1e6),
    "lr_start": vf.number_in(0.0, sys.float_info.max), "lr_end": vf.number_in(0.0, sys.float_info.max),
    "blur_start": vf.number_in(0.0, 100.0), "blur_mid": vf.number_in(0.0, 100.0),
    "jitter_blur_start": vf.number_in(0.0, 100.0), "blur_end": vf.number_in(0.0, 100.0),
    "jitter_start": vf.whole_in(0, limits.MAX_STEPS), "jitter": vf.whole_in(0, 1024),
    "normalize": vf.flag, "normalize_grad": vf.flag,
    "init_mean": vf.number_in(-10.0, 10.0), "init_std": vf.number_in(0.0, 10.0),
    "seed": vf.whole_in(0, limits.MAX_SEED), "report_every": vf.whole_in(1, limits.MAX_STEPS),
    "device": lambda v, name: vf.text(v, name, max_len=16),
}


def search_classes(query: str, limit: int = 20) -> list[tuple[int, str]]:
    """ImageNet classes whose name contains ``query`` (case-insensitive), or the class with that index."""
    names = imagenet_classes()
    q = str(query).strip().lower()
    if q.isdigit():
        i = int(q)
        return [(i, names[i])] if 0 <= i < len(names) else []
    return [(i, n) for i, n in enumerate(names) if q in n.lower()][:limit]


def resolve_class(query: str | int) -> int:
    hits = search_classes(str(query))
    if not hits:
        raise ConfigError(f"No ImageNet class matches {query!r}; search by name (e.g. 'dalmatian') or give 0-999.")
    exact = [i for i, n in hits if n.lower() == str(query).strip().lower()]
    return exact[0] if exact else hits[0][0]


def make_generate_config(model: str | ModelRef = "vit_b_32", cls: str | int = "dalmatian", *,
                         weights: str = "trained", **kw) -> GenerateConfig:
    """Build and check a class-image config: every field's type and bounds, the model (:func:`check_ref`),
    and in public mode at most :data:`vitrep.limits.PUBLIC_MAX_STEPS` steps."""
    ref = model if isinstance(model, ModelRef) else make_ref(model, weights)
    check_ref(ref)
    c = GenerateConfig(model=ref, class_index=resolve_class(cls), **kw)
    if isinstance(c.steps, int) and isinstance(c.report_every, int) and (c.steps < 1 or c.report_every < 1):
        raise ConfigError("Steps and the report interval must be at least 1.")
    if isinstance(c.jitter, int) and c.jitter < 0:
        raise ConfigError("Jitter must be 0 or more pixels.")
    if isinstance(c.steps, int) and limits.public_mode() and c.steps > limits.PUBLIC_MAX_STEPS:
        raise ConfigError(f"This public server runs at most {limits.PUBLIC_MAX_STEPS:,} steps, not {c.steps:,}; "
                          f"run vitrep on your own machine for more.")
    for f in fields(GenerateConfig):
        if f.name != "model":
            GENERATE_CHECKS[f.name](getattr(c, f.name), f.name)
    resolve_device(c.device)
    return c


def blur_sigma(c: GenerateConfig, n: int) -> float:
    """The paper's two-phase schedule: 2.4 -> 0.8 before jitter, 1.5 -> 0.4 during it."""
    if n < c.jitter_start or c.jitter == 0:
        return linear(c.blur_start, c.blur_mid, n, min(c.jitter_start, c.steps))
    return linear(c.jitter_blur_start, c.blur_end, n - c.jitter_start, c.steps - c.jitter_start)


@dataclass
class Generated:
    config: GenerateConfig
    status: str
    steps: int
    seconds: float
    image: np.ndarray  # uint8 canvas
    curves: dict[str, list]  # step, loss, target_logit, best_other_logit
    top5: list[tuple[int, str, float]]  # (index, name, logit) on the final image
    stages: list[tuple[int, np.ndarray]] = field(default_factory=list)
    from_cache: bool = False

    @property
    def margin(self) -> float:
        return self.curves["target_logit"][-1] - self.curves["best_other_logit"][-1]

    def to_bytes(self) -> bytes:
        meta = {"config": self.config.to_dict(), "status": self.status, "steps": self.steps, "seconds": self.seconds,
                "curves": self.curves, "top5": self.top5, "stage_steps": [s for s, _ in self.stages]}
        arrays = {"image": self.image, **{f"stage{i}": im for i, (_, im) in enumerate(self.stages)}}
        return pack(meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Generated":
        meta, z = unpack(data)
        stages = [(s, z[f"stage{i}"]) for i, s in enumerate(meta.pop("stage_steps"))]
        top5 = [tuple(t) for t in meta.pop("top5")]
        return cls(config=GenerateConfig.from_dict(meta.pop("config")), image=z["image"], stages=stages, top5=top5,
                   from_cache=True, **meta)


def generate(config: GenerateConfig, progress: Optional[ProgressFn] = None, lm: Optional[LoadedModel] = None) -> Generated:
    """Class input generation, a recipe over the descent package: the objective ``|C - logit_i|``
    (:class:`~vitrep.descent.objectives.ClassLogit`), a seeded start, the jitter canvas as the loop's view
    and paste (:class:`~vitrep.descent.param.JitterCanvas`), normalised (or, with ``normalize_grad``
    off, the paper's raw) gradient steps with the two-phase blur, and the shared recorder.

    ``progress(Progress)`` sees each report step (its one row: loss,
    target_logit, best_other_logit; its image: the canvas) and may return
    True to stop.
    """
    c = config
    lm = lm or load_model(c.model, c.device)
    S, dev = lm.size, lm.device
    objective = ClassLogit(tap_path(lm, "logits", normalize=c.normalize), c.class_index, c.target, S)
    a = noise_start(c.seed, (1, 3, S, S), c.init_mean, c.init_std).to(dev)
    canvas = JitterCanvas(S, c.jitter, c.jitter_start, c.steps, c.seed, a)
    update = Update(Stepper("ngd" if c.normalize_grad else "gd", a.shape, dev),
                    Schedule(c.steps, (c.lr_start, c.lr_end), lambda n: blur_sigma(c, n)))
    recorder = Recorder(a, ("loss", "target_logit", "best_other_logit"), c.steps, c.report_every, progress,
                        snapshots=None, seen=lambda x, j: canvas.canvas[j])
    rows = Rows(1, c.steps, BlowupGuard(1, enabled=False), recorder.record, recorder.report)  # a non-finite loss ends it
    a = descend(a, rows, objective.forward, lambda *_: objective.metrics_of(canvas.canvas), update, c.report_every,
                c.report_every, view=canvas.view, paste=canvas.paste)
    lg, _, _ = objective.score(a)
    names = imagenet_classes()
    top = torch.topk(lg, 5)
    top5 = [(int(i), names[int(i)] if int(i) < len(names) else str(int(i)), float(v)) for v, i in zip(top.values, top.indices)]
    stages = recorder.snapshots[0]
    if len(stages) > 12:  # keep a dozen evenly spaced stages
        idx = np.linspace(0, len(stages) - 1, 12).round().astype(int)
        stages = [stages[i] for i in idx]
    return Generated(c, rows.status[0], rows.steps_of(0), recorder.seconds, to_uint8(a), recorder.curves[0], top5,
                     stages)


def generate_key(config: GenerateConfig) -> str:
    d = config.to_dict()
    d["device"] = resolve_device(config.device).type
    return make_key("generate", config=d, weights=weights_identity(config.model),
                    torch=torch_release())


def run_generate(config: GenerateConfig, memo: Optional[Memo] = None, progress: Optional[ProgressFn] = None,
                 on_wait=None, queue_limit: Optional[int] = None) -> Generated:
    """:func:`generate` through the disk memo (queued per device like a reconstruction)."""
    def compute() -> Generated:
        with device_lock(config.device, on_wait, queue_limit):
            return generate(config, progress)

    if memo is None:
        return compute()
    return memo.get_or_compute(generate_key(config), compute, Generated.to_bytes,
                               Generated.from_bytes, keep=lambda r: r.status != "stopped")
