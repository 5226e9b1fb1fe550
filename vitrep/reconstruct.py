"""Reconstruct an input from a layer's output by gradient descent (the page's method).

Given an image ``a`` and a layer ``O_l``, start from ``a_0 ~ N(0.7, 1/20)`` and
iterate ``a_{n+1} = blur_{sigma_n}(a_n - lr_n * grad loss(O_l(a_n), O_l(a)))``
with lr and sigma decaying linearly.  Every ``report_every`` steps the curves
record the embedding distance ``m_g = ||O(a) - O(a_n)||``, the input distance
``||a - a_n||`` and PSNR; the baseline ``m_r = ||O(a) - O(a')||`` for
``a' = a + N(0, 1/18)`` is the page's bar: ``m_g < m_r`` is success.

:func:`reconstruct_many` runs several configs that share a model as one batch
(rows never interact, so each row equals its lone run); :func:`reconstruct` is
the single-config case.  Progress goes to a callback, which may return True
to stop.  Results are plain numpy/JSON, cacheable by :mod:`vitrep.cache`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .errors import ConfigError
from .images import to_uint8
from .cache import Memo, make_key, pack, unpack
from .images import content_hash
from .models import LoadedModel, ModelRef, load_model, make_ref, resolve_device, weights_identity
from .surgery import Surgery, make_surgery
from . import budget
from .queueing import OnWait, device_queue
from .taps import needs_gather, parse_tap, run_paths, tap_path

log = logging.getLogger("vitrep")
LOSSES = ("l1", "l2")
OPTIMIZERS = ("gd", "adam")
MAX_BACKOFFS = 4  # a fifth blow-up ends the row as diverged
BLOWUP_FACTOR = 10.0  # loss this many times its best so far = a blow-up
BLOWUP_PIXEL = 20.0  # a pixel this far from 0.5 = running off (images live in [0, 1])


def device_lock(device: str, on_wait: Optional[OnWait] = None, limit: Optional[int] = None):
    """One computation per device at a time, first come first served (:mod:`vitrep.queueing`):
    sessions queue instead of oversubscribing a GPU or 2 CPU cores; ``on_wait(place, queued)`` hears
    a waiting caller's place, and ``limit`` refuses a run beyond that many waiting ones."""
    return device_queue(resolve_device(device).type).hold(on_wait, limit)


MAX_SNAPSHOTS = 24


@dataclass(frozen=True)
class ReconstructConfig:
    """Everything that determines a reconstruction (frozen, hashable, a cache key).

    ``loss``: ``l1`` is the page's ``scale * sum|t - O(a_n)|``; ``l2`` is
    ``scale * sum (t - O(a_n))^2``.  ``blur_start``/``blur_end`` are the 3x3
    Gaussian's sigma, decaying linearly (0 turns blurring off).
    ``optimizer``: ``gd`` is the page's plain step ``a - lr * g``; ``adam``
    scales each pixel's step by its gradient history, so ``lr`` is in pixel
    units whatever the model's output scale.  ``auto`` (and ``lr_start`` /
    ``lr_end`` of ``None``) take the calibrated defaults for the model family
    and the tap's depth (:mod:`vitrep.calibration`); :func:`validate` resolves
    them, so a validated config holds plain numbers.  ``backoff``: at a
    blow-up (the loss far above its best, non-finite, or pixels running off
    to large values) the row returns to its best image and continues at a
    quarter of the step; the result counts these.
    ``normalize`` feeds the model ``(a - mean) / std`` (the page fed raw [0,1]
    pixels); ``clamp`` keeps the image in [0,1] after every step (the page did
    not).  ``pos_embed`` adds a ViT's positional embedding as the model does
    (False = the page's figures).
    """

    model: ModelRef
    tap: str = "encoder-1"
    surgery: Surgery = Surgery()
    pos_embed: bool = True
    steps: int = 300
    optimizer: str = "auto"
    lr_start: Optional[float] = None
    lr_end: Optional[float] = None
    loss: str = "l1"
    loss_scale: float = 0.05
    blur_start: float = 2.4
    blur_end: float = 0.4
    clamp: bool = False
    normalize: bool = False
    init_mean: float = 0.7
    init_std: float = 0.05
    seed: int = 0
    report_every: int = 10
    device: str = "auto"
    resize: str = "crop"
    backoff: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["surgery"] = {"remove": list(self.surgery.remove),
                        "blocks": None if self.surgery.blocks is None else list(self.surgery.blocks)}
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReconstructConfig":
        d = dict(d)
        model = ModelRef.from_dict(d.pop("model"))
        s = d.pop("surgery", None) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"The config has unknown field(s) {', '.join(sorted(unknown))}.")
        blocks = s.get("blocks")
        return cls(model=model,
                   surgery=Surgery(tuple(s.get("remove", ())), None if blocks is None else tuple(blocks)), **d)


def make_config(model: str | ModelRef = "vit_b_32", layer: str | int = 1, *, weights: str = "untrained",
                remove=(), blocks=None, **kw) -> ReconstructConfig:
    """Build and validate a config from user-level values (model name, layer text, component names)."""
    ref = model if isinstance(model, ModelRef) else make_ref(model, weights, seed=kw.pop("model_seed", 0),
                                                             **{k: kw.pop(k) for k in ("patch", "width", "depth", "heads", "size", "swaps", "swap_from") if k in kw})
    family, depth = ref.spec.family, ref.num_blocks
    tap = parse_tap(layer, family, depth)
    surgery = make_surgery(family, remove, blocks, depth if family != "resnet" else 16)
    return validate(ReconstructConfig(model=ref, tap=tap, surgery=surgery, **kw))


def resolve_defaults(c: ReconstructConfig) -> ReconstructConfig:
    """``c`` with the calibrated defaults filled in (an ``auto`` optimiser, an lr of ``None``)."""
    from .calibration import default_schedule

    if c.optimizer not in OPTIMIZERS + ("auto",):
        raise ConfigError(f"Optimizer {c.optimizer!r} is not known; use gd (the page's plain step) or adam.")
    if c.optimizer != "auto" and c.lr_start is not None and c.lr_end is not None:
        return c
    opt, lr0, lr1 = default_schedule(c.model, c.tap, None if c.optimizer == "auto" else c.optimizer)
    return replace(c, optimizer=opt, lr_start=lr0 if c.lr_start is None else c.lr_start,
                   lr_end=(lr1 if c.lr_start is None else c.lr_start * lr1 / lr0) if c.lr_end is None else c.lr_end)


def validate(c: ReconstructConfig) -> ReconstructConfig:
    """Check every value and resolve the calibrated defaults (:func:`resolve_defaults`)."""
    c = resolve_defaults(c)
    if c.steps < 1:
        raise ConfigError(f"Steps must be at least 1, not {c.steps}.")
    if c.loss not in LOSSES:
        raise ConfigError(f"Loss {c.loss!r} is not known; use l1 or l2.")
    if c.report_every < 1:
        raise ConfigError("The report interval must be at least 1 step.")
    for name in ("lr_start", "lr_end", "loss_scale", "init_std", "blur_start", "blur_end"):
        v = getattr(c, name)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"{name.replace('_', ' ')} must be a finite number >= 0, not {v}.")
    resolve_device(c.device)
    return c


@dataclass
class Progress:
    """What a progress callback sees at each report step."""

    step: int
    total: int
    seconds: float
    rows: list[dict]  # per config: step, loss, embedding_distance, input_distance, psnr
    images: list[np.ndarray]  # current reconstruction per config, uint8 (H, W, 3)
    baselines: list[float] = field(default_factory=list)  # per config: the bar m_r

    @property
    def steps_per_second(self) -> float:
        return self.step / self.seconds if self.seconds > 0 else 0.0


ProgressFn = Callable[[Progress], Optional[bool]]
CURVE_KEYS = ("step", "loss", "embedding_distance", "input_distance", "psnr")


@dataclass
class Result:
    """A finished (or stopped, or diverged) reconstruction: numpy and JSON only."""

    config: ReconstructConfig
    status: str  # "done" | "diverged at step k" | "stopped"
    steps: int
    seconds: float
    device: str
    weights_identity: str
    target: np.ndarray  # uint8 (H, W, 3)
    image: np.ndarray  # uint8 (H, W, 3)
    curves: dict[str, list]
    baseline: dict[str, float]
    final: dict[str, float]
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)
    from_cache: bool = False
    backoffs: int = 0  # times a blow-up sent the run back to its best image at a quarter of the step

    @property
    def success(self) -> bool:
        return bool(self.final["embedding_distance"] < self.baseline["embedding_distance"])

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict:
        """The documented ``result.json`` content."""
        return {
            "vitrep_version": __version__, "torch_version": torch.__version__,
            "config": self.config.to_dict(), "weights_identity": self.weights_identity,
            "device": self.device, "status": self.status, "steps": self.steps,
            "seconds": self.seconds, "steps_per_second": self.steps_per_second,
            "final": self.final, "baseline": self.baseline, "success": self.success,
            "backoffs": self.backoffs, "from_cache": self.from_cache,
        }

    def curves_csv(self) -> str:
        lines = [",".join(CURVE_KEYS)]
        for i in range(len(self.curves["step"])):
            lines.append(",".join(repr(self.curves[k][i]) for k in CURVE_KEYS))
        return "\n".join(lines) + "\n"

    # --- (de)serialisation for the disk memo: npz + JSON, no pickle -----------------------------
    def to_bytes(self) -> bytes:
        meta = {k: getattr(self, k) for k in ("status", "steps", "seconds", "device", "weights_identity",
                                              "curves", "baseline", "final", "backoffs")}
        meta["config"] = self.config.to_dict()
        meta["snapshot_steps"] = [s for s, _ in self.snapshots]
        arrays = {"target": self.target, "image": self.image}
        arrays.update({f"snap{i}": im for i, (_, im) in enumerate(self.snapshots)})
        return pack(meta, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Result":
        meta, z = unpack(data)
        snaps = [(s, z[f"snap{i}"]) for i, s in enumerate(meta.pop("snapshot_steps"))]
        cfg = ReconstructConfig.from_dict(meta.pop("config"))
        return cls(config=cfg, target=z["target"], image=z["image"], snapshots=snaps, from_cache=True, **meta)


# --- the loop ------------------------------------------------------------------------------------

_GRIDS: dict[str, torch.Tensor] = {}


def _grid3(device: torch.device) -> torch.Tensor:
    """The offsets -1, 0, 1 on ``device``, made once (no host copy inside a CUDA graph capture)."""
    key = str(device)
    if key not in _GRIDS:
        _GRIDS[key] = torch.tensor([-1.0, 0.0, 1.0], device=device)
    return _GRIDS[key]


def gaussian_kernel3(sigma: float | torch.Tensor, device) -> torch.Tensor:
    """3x3 Gaussian as a depthwise conv weight ``(3, 1, 3, 3)`` (torchvision's kernel).

    ``sigma`` may be a one-element tensor on ``device`` (a CUDA graph's schedule); a
    tensor sigma of 0 gives the identity kernel.
    """
    x = _grid3(torch.device(device))
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.clamp_min(1e-6)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    return torch.outer(k1, k1).expand(3, 1, 3, 3).contiguous()


def blur(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """One depthwise 3x3 Gaussian with reflect padding, as torchvision's ``gaussian_blur``; sigma 0 = identity.

    On CPU a batch is blurred image by image, each as three one-channel
    planes: oneDNN's grouped convolution slows down 4-5x for a batch of 12
    (a layer sweep), and this form gives the same bits (tested).
    """
    if not isinstance(sigma, torch.Tensor) and sigma <= 0:
        return x
    k = gaussian_kernel3(sigma, x.device)
    if x.device.type != "cpu" or x.shape[0] == 1:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, groups=3)
    b, c, h, w = x.shape
    return torch.cat([F.conv2d(F.pad(xi.reshape(c, 1, h, w), (1, 1, 1, 1), mode="reflect"), k[:1])
                      for xi in x]).reshape(b, c, h, w)


@contextlib.contextmanager
def float32(dev: torch.device, tf32: bool = False):
    """Full float32 on a CUDA GPU for the duration (TF32 off, whatever the process set).

    ``tf32=True`` is for benchmarks/precision.py, which measures what TF32
    would change; the engine never passes it.
    """
    if dev.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class _CudaGraphStep:
    """One reconstruction step of a whole batch captured as a CUDA graph.

    Forward to the taps, loss, gradient to the input, the update and the blur
    are recorded once and replayed each step: at batch 1 a step is hundreds of
    small kernels, and launching them one by one from Python costs more than
    running them.  The lr and sigma schedules live on the GPU and a step
    counter advances inside the graph, so a replay needs nothing from the
    host.  After a replay, ``previous`` holds the step's input ``a_n``,
    ``metrics`` its loss and distances, and ``a`` the next input.
    ``VITREP_CUDA_GRAPHS=0`` turns this off (the eager loop, for comparison).
    """

    MIN_STEPS = 8
    captures = 0  # graphs captured in this process (tests check that the graph path ran)

    @classmethod
    def make(cls, a, forward, metrics, step_update, c0, N, paths, reset=lambda: None) -> Optional["_CudaGraphStep"]:
        """A captured step, or None where the eager loop runs (CPU, few steps, switched off, or capture failed)."""
        if (a.device.type != "cuda" or N < cls.MIN_STEPS or os.environ.get("VITREP_CUDA_GRAPHS", "1") == "0"
                or needs_gather(paths)):
            return None
        try:
            graph = cls(a, forward, metrics, step_update, c0, N, reset)
        except RuntimeError as e:  # a model whose forward cannot be captured still runs, eagerly
            log.warning("CUDA graph capture failed (%s); running the eager loop", str(e).splitlines()[0])
            torch.cuda.synchronize(a.device)
            return None
        cls.captures += 1
        return graph

    def __init__(self, a, forward, metrics, step_update, c0, N, reset=lambda: None) -> None:
        dev, rows = a.device, list(range(a.shape[0]))
        self.a = a.detach().clone()
        start = self.a.clone()
        self.lrs = torch.tensor([linear(c0.lr_start, c0.lr_end, n, N) for n in range(N)] + [0.0], device=dev)
        self.sigmas = torch.tensor([linear(c0.blur_start, c0.blur_end, n, N) for n in range(N)] + [0.0], device=dev)
        self.n = torch.zeros((), dtype=torch.long, device=dev)

        def step():
            x = self.a.detach().requires_grad_(True)
            with torch.enable_grad():
                outs, losses = forward(x, rows)
                (grad,) = torch.autograd.grad(losses.sum(), x)
            with torch.no_grad():
                m = metrics(x, rows, outs, losses)
                previous = self.a.clone()
                at = self.n.view(1)  # index on the GPU: a 0-d index would be read back to the host
                self.a.copy_(step_update(x, grad, self.lrs.index_select(0, at), self.sigmas.index_select(0, at)))
                self.n.add_(1)
            return previous, m

        side = torch.cuda.Stream(device=dev)  # warm-up on a side stream, as graph capture requires
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream(dev).wait_stream(side)
        self.a.copy_(start)
        self.n.zero_()
        reset()  # the optimiser's state after the warm-up steps
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.previous, self.metrics = step()

    def replay(self) -> None:
        self.graph.replay()


def linear(start: float, end: float, n: int, total: int) -> float:
    return start if total <= 1 else start + (end - start) * n / (total - 1)


def _loss(kind: str, scale: float, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = out - target
    return scale * (d.abs().sum() if kind == "l1" else (d * d).sum())


SHARED_FIELDS = ("model", "steps", "optimizer", "lr_start", "lr_end", "loss", "loss_scale", "blur_start",
                 "blur_end", "clamp", "report_every", "device", "backoff")


def reconstruct_many(images: Sequence[torch.Tensor] | torch.Tensor, configs: Sequence[ReconstructConfig],
                     progress: Optional[ProgressFn] = None, lm: Optional[LoadedModel] = None) -> list[Result]:
    """Run several reconstructions that share a model and schedule as one batch.

    ``images[i]`` (``(1, 3, H, W)`` or ``(3, H, W)``, [0,1]) is reconstructed
    from ``configs[i].tap`` with ``configs[i].surgery``; taps, surgery, seeds,
    init, normalisation and positional embedding may differ per row.
    """
    configs = [validate(c) for c in configs]
    c0 = configs[0]
    for c in configs[1:]:
        diff = [f for f in SHARED_FIELDS if getattr(c, f) != getattr(c0, f)]
        if diff:
            raise ConfigError(f"Batched reconstructions must share {', '.join(diff)}.")
    lm = lm or load_model(c0.model, c0.device)
    dev = lm.device
    if isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[0] == len(configs):
        img = images.to(dev, torch.float32)
    else:
        img = torch.cat([(im if im.dim() == 4 else im.unsqueeze(0)) for im in images]).to(dev, torch.float32)
    B, _, H, W = img.shape
    if B != len(configs):
        raise ConfigError(f"{B} images for {len(configs)} configs.")
    if H != lm.size or W != lm.size:
        raise ConfigError(f"{lm.ref.name} takes {lm.size}x{lm.size} images, not {H}x{W}; prepare the image at the model's size.")
    paths = [tap_path(lm, c.tap, c.surgery, c.pos_embed, c.normalize) for c in configs]
    N, every = c0.steps, c0.report_every
    check_every = 1 if dev.type == "cpu" else every

    # Targets and the a' baseline, computed once.
    gens = [torch.Generator().manual_seed(c.seed) for c in configs]
    with torch.no_grad():
        targets = [t.detach() for t in run_paths(img, paths)]
        noise = torch.stack([torch.randn(3, H, W, generator=g) for g in gens]).to(dev) / 18.0
        shifted = run_paths(img + noise, paths)
        baseline = [{"embedding_distance": float(torch.linalg.vector_norm(s - t)),
                     "input_distance": float(torch.linalg.vector_norm(noise[i]))}
                    for i, (s, t) in enumerate(zip(shifted, targets))]
        a = torch.stack([torch.randn(3, H, W, generator=g) * c.init_std + c.init_mean
                         for g, c in zip(gens, configs)]).to(dev)

    curves = [{k: [] for k in CURVE_KEYS} for _ in configs]
    snap_every = every * max(1, math.ceil(N / every / MAX_SNAPSHOTS))
    snapshots: list[list] = [[] for _ in configs]
    status = ["done"] * B
    last_good = [to_uint8(a[i]) for i in range(B)]
    active = list(range(B))
    steps_done = 0
    stepper = _Stepper(c0.optimizer, a.shape, dev)
    stepper.scaled = dev.type == "cuda"  # a captured graph must carry the scale (1.0 gives the same bits)
    guard = _BlowupGuard(B, c0.backoff)
    t0 = time.perf_counter()

    def record(step: int, rows: list[int], m: dict, x) -> None:
        """Append step ``step`` of ``rows`` (metrics ``m``: per-row tensors of the batch ``x``)."""
        values = {k: v.tolist() for k, v in m.items()}
        for j, i in enumerate(rows):
            c = curves[i]
            c["step"].append(step)
            c["loss"].append(float(values["loss"][j]))
            c["embedding_distance"].append(float(values["embedding_distance"][j]))
            c["input_distance"].append(float(values["input_distance"][j]))
            mse = float(values["mse"][j])
            c["psnr"].append(float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse))
            last_good[i] = to_uint8(x[j])
            if step % snap_every == 0 or step == N:
                snapshots[i].append((step, last_good[i]))

    def report(step: int) -> bool:
        """Tell the callback; True when it asks to stop."""
        if progress is None:
            return False
        rows = [{k: v[-1] for k, v in curves[i].items()} if curves[i]["step"] else {} for i in range(B)]
        return bool(progress(Progress(step, N, time.perf_counter() - t0, rows, list(last_good),
                                      [b["embedding_distance"] for b in baseline])))

    def forward(x: torch.Tensor, rows: list[int]):
        outs = run_paths(x, [paths[i] for i in rows])
        return outs, torch.stack([_loss(c0.loss, c0.loss_scale, o, targets[i]) for o, i in zip(outs, rows)])

    def metrics(x: torch.Tensor, rows: list[int], outs, losses) -> dict:
        ref = img if len(rows) == B else img[rows]
        return {"loss": losses.detach(),
                "embedding_distance": torch.stack([torch.linalg.vector_norm(o.detach() - targets[i])
                                                   for o, i in zip(outs, rows)]),
                "input_distance": torch.linalg.vector_norm((x.detach() - ref).flatten(1), dim=1),
                "mse": ((x.detach().clamp(0, 1) - ref) ** 2).flatten(1).mean(1)}

    def step_update(x: torch.Tensor, grad: torch.Tensor, lr, sigma, rows=None) -> torch.Tensor:
        x = blur(stepper.step(x.detach(), grad, lr, rows), sigma)
        return x.clamp_(0, 1) if c0.clamp else x

    def check(n: int, rows: list[int], losses: torch.Tensor, x: torch.Tensor) -> tuple[list[int], list[int]]:
        """The blow-up guard at step ``n``: rows restored to their best image, rows given up (diverged)."""
        restored, dead = guard.check(n, rows, losses, x)
        for i in restored:
            stepper.back_off(i)
        for i in dead:
            status[i] = f"diverged at step {n}"
        return restored, dead

    with FLOAT32(dev):
        graph = _CudaGraphStep.make(a, forward, metrics, step_update, c0, N, paths, reset=stepper.reset)
        if graph is not None:  # CUDA: one graph replay per step, the host reads back only at report steps
            for n in range(N + 1):
                if n < N:
                    graph.replay()
                    x, m = graph.previous, graph.metrics
                else:  # the final image: measured, not stepped
                    with torch.no_grad():
                        x, every_row = graph.a, list(range(B))
                        outs, losses = forward(x, every_row)
                        m = metrics(x, every_row, outs, losses)
                if n % every and n != N:
                    continue
                steps_done = n
                restored, dead = check(n, active, m["loss"][active], x[active])
                active = [i for i in active if i not in dead]
                if not active:
                    break
                ok = [i for i in active if i not in restored]  # rows never interact: a restored row just goes on
                with torch.no_grad():
                    if ok:
                        record(n, ok, {k: v[ok] for k, v in m.items()}, x[ok])
                    for i in restored:
                        graph.a[i].copy_(guard.best_image(i))  # the next replay starts it from its best image
                if report(n) and n < N:
                    for i in active:
                        status[i] = "stopped"
                    break
        else:  # the eager loop: CPU, short runs, or graphs switched off
            for n in range(N + 1):
                x = (a if len(active) == B else a[active]).detach().requires_grad_(n < N)
                with torch.enable_grad():
                    outs, losses = forward(x, active)
                is_report = n % every == 0 or n == N
                if is_report or n % check_every == 0:
                    restored, dead = check(n, active, losses.detach(), x.detach())
                    if restored or dead:  # those rows change or leave; the others go on undisturbed
                        active = [i for i in active if i not in dead]
                        if not active:
                            break
                        a = a.detach().clone()
                        for i in restored:
                            a[i] = guard.best_image(i)
                        x = (a if len(active) == B else a[active]).detach().requires_grad_(n < N)
                        with torch.enable_grad():
                            outs, losses = forward(x, active)
                steps_done = n
                if is_report:
                    with torch.no_grad():
                        record(n, active, metrics(x, active, outs, losses), x.detach())
                    if report(n) and n < N:
                        for i in active:
                            status[i] = "stopped"
                        break
                if n == N:
                    break
                (grad,) = torch.autograd.grad(losses.sum(), x)
                with torch.no_grad():
                    x = step_update(x, grad, linear(c0.lr_start, c0.lr_end, n, N),
                                    linear(c0.blur_start, c0.blur_end, n, N), None if len(active) == B else active)
                    if len(active) == B:
                        a = x
                    else:
                        a = a.clone()
                        a[active] = x

    seconds = time.perf_counter() - t0
    results = []
    for i, c in enumerate(configs):
        cv = curves[i]
        final = {k: (cv[k][-1] if cv["step"] else float("nan")) for k in ("embedding_distance", "input_distance", "psnr")}
        if snapshots[i] and snapshots[i][-1][1] is not last_good[i]:
            snapshots[i].append((cv["step"][-1] if cv["step"] else 0, last_good[i]))
        done = int(status[i].rsplit(" ", 1)[1]) if status[i].startswith("diverged") else steps_done
        results.append(Result(config=c, status=status[i], steps=done, seconds=seconds, device=str(dev),
                              weights_identity=lm.identity, target=to_uint8(img[i]), image=last_good[i],
                              curves=cv, baseline=baseline[i], final=final, snapshots=snapshots[i],
                              backoffs=guard.backoffs[i]))
    return results


class _Stepper:
    """The update rule of a batch: the page's plain step, or Adam; a step-size scale per row (back-off).

    ``step(x, grad, lr, rows)`` returns ``x - lr * direction`` for the batch
    rows ``rows`` (``None`` = all).  The plain step with no back-off is the
    page's expression exactly.  Adam's moments are kept per pixel and row, in
    tensors updated in place (a CUDA graph captures them).
    """

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, kind: str, shape, device) -> None:
        self.kind = kind
        b = shape[0]
        self.scale = torch.ones(b, 1, 1, 1, device=device)
        self.scaled = False
        if kind == "adam":
            self.m = torch.zeros(shape, device=device)
            self.v = torch.zeros(shape, device=device)
            self.t = torch.zeros(b, 1, 1, 1, device=device)

    def reset(self) -> None:
        """Forget all state (after a CUDA graph's warm-up steps)."""
        if self.kind == "adam":
            for s in (self.m, self.v, self.t):
                s.zero_()

    def back_off(self, row: int) -> None:
        """Row ``row`` goes on at a quarter of its step, its Adam moments forgotten."""
        self.scale[row] *= 0.25
        self.scaled = True
        if self.kind == "adam":
            self.m[row] = 0
            self.v[row] = 0
            self.t[row] = 0

    def step(self, x: torch.Tensor, grad: torch.Tensor, lr, rows: Optional[list[int]]) -> torch.Tensor:
        if self.kind == "gd":
            if not self.scaled:
                return x - lr * grad  # the page's step, bit for bit
            return x - lr * self.scale[rows if rows is not None else slice(None)] * grad
        b1, b2 = self.BETAS
        sel = slice(None) if rows is None else rows
        m, v, t = self.m[sel], self.v[sel], self.t[sel]
        if rows is None:  # in place: the state tensors themselves (CUDA-graph safe)
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            t.add_(1)
        else:  # a subset of rows: compute on copies, write back
            m = m * b1 + (1 - b1) * grad
            v = v * b2 + (1 - b2) * grad * grad
            t = t + 1
            self.m[rows], self.v[rows], self.t[rows] = m, v, t
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        return x - lr * self.scale[sel] * m_hat / (v_hat.sqrt() + self.EPS)


class _BlowupGuard:
    """Watches each row's loss and image; at a blow-up the row goes back to its best image.

    A blow-up is a non-finite loss, a loss ``BLOWUP_FACTOR`` times its best so
    far, or a pixel ``BLOWUP_PIXEL`` away from mid-grey (patches running off).
    The row's best image (lowest loss) is kept; on a blow-up it is restored
    and the caller scales the row's step by 1/4.  After ``MAX_BACKOFFS``
    back-offs the next blow-up ends the row as diverged.  Off (``backoff``
    False), a non-finite loss still ends a row: nothing else is watched.
    """

    def __init__(self, rows: int, enabled: bool) -> None:
        self.enabled = enabled
        self.best_loss = [math.inf] * rows
        self.best: list[Optional[torch.Tensor]] = [None] * rows
        self.backoffs = [0] * rows

    def check(self, n: int, rows: list[int], losses: torch.Tensor, x: torch.Tensor) -> tuple[list[int], list[int]]:
        values = losses.tolist()
        far = ((x - 0.5).abs().flatten(1).amax(1) > BLOWUP_PIXEL).tolist() if self.enabled else [False] * len(rows)
        restored, dead = [], []
        for j, i in enumerate(rows):
            v = values[j]
            blown = not math.isfinite(v) or (self.enabled and (far[j] or v > BLOWUP_FACTOR * self.best_loss[i]))
            if blown:
                if not self.enabled or self.best[i] is None or self.backoffs[i] >= MAX_BACKOFFS:
                    dead.append(i)
                else:
                    self.backoffs[i] += 1
                    restored.append(i)
            elif v < self.best_loss[i]:
                self.best_loss[i] = v
                if self.enabled:
                    self.best[i] = x[j].detach().clone()
        return restored, dead

    def best_image(self, row: int) -> torch.Tensor:
        return self.best[row]


FLOAT32 = float32  # the precision context of every run (benchmarks/precision.py swaps it to measure TF32)


def reconstruct(image: torch.Tensor, config: ReconstructConfig, progress: Optional[ProgressFn] = None,
                lm: Optional[LoadedModel] = None) -> Result:
    """Reconstruct one image from one layer; see :func:`reconstruct_many`."""
    return reconstruct_many([image], [config], progress, lm)[0]


def cache_key(image: torch.Tensor, config: ReconstructConfig) -> str:
    """The memo key of a run: image pixels, config (defaults and device resolved), weights identity, torch version."""
    d = resolve_defaults(config).to_dict()
    d["device"] = resolve_device(config.device).type
    return make_key("reconstruct", image=content_hash(image), config=d, weights=weights_identity(config.model),
                    torch=".".join(torch.__version__.split(".")[:2]))


def run(image: torch.Tensor, config: ReconstructConfig, memo: Optional[Memo] = None,
        progress: Optional[ProgressFn] = None, on_wait: Optional[OnWait] = None,
        queue_limit: Optional[int] = None) -> Result:
    """:func:`reconstruct` through the disk memo: a repeat is a hit (``result.from_cache``).

    Stopped runs are not remembered; finished and diverged ones are.
    """
    config = validate(config)

    def compute() -> Result:
        with device_lock(config.device, on_wait, queue_limit):
            return reconstruct(image, config, progress)

    if memo is None:
        return compute()
    return memo.get_or_compute(cache_key(image, config), compute, Result.to_bytes, Result.from_bytes,
                               keep=lambda r: r.status != "stopped")


def plan_batches(configs: Sequence[ReconstructConfig]) -> list[list[int]]:
    """The batches :func:`run_batch` runs ``configs`` in: indices grouped by shared model and schedule, in order."""
    groups: dict = {}
    for i, c in enumerate(configs):
        groups.setdefault(tuple(getattr(c, f) for f in SHARED_FIELDS), []).append(i)
    return list(groups.values())


def run_batch(images: Sequence[torch.Tensor], configs: Sequence[ReconstructConfig], memo: Optional[Memo] = None,
              progress: Optional[Callable[[int, Progress], Optional[bool]]] = None,
              on_wait: Optional[OnWait] = None, queue_limit: Optional[int] = None, executor=None) -> list[Result]:
    """Many runs through the memo: hits are read, the misses run as batches of shared model and schedule.

    ``progress(batch_index, Progress)`` reports each batch; ``batch_index`` is
    the batch's place in :func:`plan_batches` (batches that are all memo hits
    are skipped), rows of a batch are its misses, in order.  Each batch is
    single-flight: callers asking for the same batch at once compute it once.
    A batch stopped by its callback ends the whole call (later batches are
    not started; their rows are ``None``).  ``executor`` (e.g.
    :class:`vitrep.distributed.RayExecutor`) runs the call elsewhere, same contract.
    """
    if executor is not None:
        return executor.run_batch(images, configs, memo, progress)
    configs = [validate(c) for c in configs]
    keys = [cache_key(im, c) for im, c in zip(images, configs)]
    out: list = [memo.get(k, Result.from_bytes) if memo is not None else None for k in keys]
    chunks = []  # (batch index, rows): a batch split into chunks whose activations fit the memory budget
    for g, group in enumerate(plan_batches(configs)):
        rows = [i for i in group if out[i] is None]
        if rows:
            c0 = configs[rows[0]]
            sizes = [budget.row_bytes(c0.model, configs[i].tap, configs[i].pos_embed, configs[i].normalize)
                     for i in rows] if budget.memory_budget_bytes() else 0
            chunks += [(g, chunk) for chunk in budget.split_rows(rows, sizes, model=c0.model)]
    for g, rows in chunks:
        cb = None if progress is None else (lambda p, g=g: progress(g, p))
        # single flight per batch: a second session asking for the same sweep waits, then reads the memo
        flight = memo.flight(make_key("batch", rows=[keys[i] for i in rows])) \
            if memo is not None else contextlib.nullcontext()
        with flight:
            if memo is not None:
                for i in rows:
                    out[i] = memo.get(keys[i], Result.from_bytes)
                rows = [i for i in rows if out[i] is None]
                if not rows:
                    continue
                memo.waiting.update(keys[i] for i in rows)
            try:
                with device_lock(configs[rows[0]].device, on_wait, queue_limit):
                    batch = reconstruct_many([images[i] for i in rows], [configs[i] for i in rows], cb)
            finally:
                if memo is not None:
                    memo.waiting.difference_update(keys[i] for i in rows)
            for i, r in zip(rows, batch):
                out[i] = r
                if memo is not None and r.status != "stopped":
                    memo.put(keys[i], r.to_bytes())
                    memo.computations += 1
            if any(r.status == "stopped" for r in batch):
                break
    return out
