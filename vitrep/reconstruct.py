"""Reconstruct an input from a layer's output by gradient descent (the page's method).

Given an image ``a`` and a layer ``O_l``, start from ``a_0 ~ N(0.7, 1/20)`` and
iterate ``a_{n+1} = blur_{sigma_n}(a_n - lr_n * grad loss(O_l(a_n), O_l(a)))``
with lr and sigma decaying linearly.  Every ``report_every`` steps the curves
record the embedding distance ``m_g = ||O(a) - O(a_n)||``, the input distance
``||a - a_n||`` and PSNR; the baseline ``m_r = ||O(a) - O(a')||`` for
``a' = a + N(0, 1/18)`` is the page's bar: ``m_g < m_r`` is success.

:func:`reconstruct_many` sets up the objective of several configs that share
a model (targets, baseline, the start) and runs them as one batch through the
shared loop (:mod:`vitrep.loop`; on CUDA, :mod:`vitrep.cudagraph`): rows never
interact, so each row equals its lone run.  :func:`reconstruct` is the
single-config case.  The pieces live by concern: the config in
:mod:`vitrep.config`, results in :mod:`vitrep.result`, the arithmetic in
:mod:`vitrep.ops`, memo, queue and batches in :mod:`vitrep.runs` (which
calls this module); the config's and result's public names are importable
from here too.
"""

from __future__ import annotations

import math
import time
from typing import Optional, Sequence

import torch

from .config import (LOSSES, OPTIMIZERS, SHARED_FIELDS, ReconstructConfig, make_config, resolve_defaults,  # noqa: F401
                     validate)
from .cudagraph import CudaGraphStep, replay
from .errors import ConfigError
from .images import to_uint8
from .loop import Rows, descend
from .models import LoadedModel, load_model
from .ops import BlowupGuard, Stepper, blur, float32, gaussian_kernel3, linear, loss_of  # noqa: F401
from .result import CURVE_KEYS, Progress, ProgressFn, Result  # noqa: F401
from .taps import run_paths, tap_path

MAX_SNAPSHOTS = 24

__all__ = ["LOSSES", "OPTIMIZERS", "SHARED_FIELDS", "CURVE_KEYS", "Progress", "ProgressFn", "ReconstructConfig",
           "Result", "blur", "gaussian_kernel3", "make_config", "reconstruct", "reconstruct_many", "resolve_defaults",
           "validate"]


def reconstruct_many(images: Sequence[torch.Tensor] | torch.Tensor, configs: Sequence[ReconstructConfig],
                     progress: Optional[ProgressFn] = None, lm: Optional[LoadedModel] = None,
                     tf32: bool = False) -> list[Result]:
    """Run several reconstructions that share a model and schedule as one batch.

    ``images[i]`` (``(1, 3, H, W)`` or ``(3, H, W)``, [0,1]) is reconstructed
    from ``configs[i].tap`` with ``configs[i].surgery``; taps, surgery, seeds,
    init, normalisation and positional embedding may differ per row.
    ``tf32`` lets a GPU use TF32 matrix products (benchmarks/precision.py
    measures what that changes; runs of the engine are full float32).
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
    last_good = [to_uint8(a[i]) for i in range(B)]
    stepper = Stepper(c0.optimizer, a.shape, dev)
    stepper.scaled = dev.type == "cuda"  # a captured graph must carry the scale (1.0 gives the same bits)
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
        return outs, torch.stack([loss_of(c0.loss, c0.loss_scale, o, targets[i]) for o, i in zip(outs, rows)])

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

    def update(x: torch.Tensor, grad: torch.Tensor, n: int, rows) -> torch.Tensor:
        return step_update(x, grad, linear(c0.lr_start, c0.lr_end, n, N), linear(c0.blur_start, c0.blur_end, n, N), rows)

    rows = Rows(B, N, BlowupGuard(B, c0.backoff), record, report, on_restore=stepper.back_off)
    with float32(dev, tf32):
        graph = CudaGraphStep.make(a, forward, metrics, step_update, c0, N, paths, reset=stepper.reset)
        if graph is not None:  # CUDA: one graph replay per step
            replay(graph, rows, forward, metrics, every)
        else:  # the eager loop: CPU, short runs, or graphs switched off
            descend(a, rows, forward, metrics, update, every, check_every)

    seconds = time.perf_counter() - t0
    results = []
    for i, c in enumerate(configs):
        cv = curves[i]
        final = {k: (cv[k][-1] if cv["step"] else float("nan")) for k in ("embedding_distance", "input_distance", "psnr")}
        if snapshots[i] and snapshots[i][-1][1] is not last_good[i]:
            snapshots[i].append((cv["step"][-1] if cv["step"] else 0, last_good[i]))
        results.append(Result(config=c, status=rows.status[i], steps=rows.steps_of(i), seconds=seconds,
                              device=str(dev), weights_identity=lm.identity, target=to_uint8(img[i]),
                              image=last_good[i], curves=cv, baseline=baseline[i], final=final,
                              snapshots=snapshots[i], backoffs=rows.guard.backoffs[i]))
    return results


def reconstruct(image: torch.Tensor, config: ReconstructConfig, progress: Optional[ProgressFn] = None,
                lm: Optional[LoadedModel] = None) -> Result:
    """Reconstruct one image from one layer; see :func:`reconstruct_many`."""
    return reconstruct_many([image], [config], progress, lm)[0]
