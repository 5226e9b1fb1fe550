"""Reconstruct an input from a layer's output by gradient descent (the paper's method): a short recipe.

Given an image ``a`` and a layer ``O_l``, start from ``a_0 ~ N(0.7, 1/20)`` and
iterate ``a_{n+1} = blur_{sigma_n}(a_n - lr_n * grad loss(O_l(a_n), O_l(a)))``
with lr and sigma decaying linearly.  Every ``report_every`` steps the curves
record the embedding distance ``m_g = ||O(a) - O(a_n)||``, the input distance
``||a - a_n||``, PSNR and SSIM (structure, what an eye judges); the baseline ``m_r = ||O(a) - O(a')||`` for
``a' = a + N(0, 1/18)`` is the paper's bar: ``m_g < m_r`` is success.

The recipe, over the descent package (:mod:`vitrep.descent`): validate the
configs (one batch shares a model and schedule) -> the objective (targets and
the baseline, :class:`~vitrep.descent.objectives.EmbeddingMatch`) and the start
(:func:`~vitrep.descent.param.pixel_starts`) -> descend (the eager loop, or on
CUDA one captured graph per step) -> one :class:`vitrep.result.Result` per
config.  Rows never interact, so each row equals its lone run.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .config import SHARED_FIELDS, ReconstructConfig, validate
from .descent.cudagraph import CudaGraphStep, replay
from .descent.loop import BlowupGuard, Rows, descend
from .descent.objectives import EmbeddingMatch
from .descent.param import pixel_starts
from .descent.record import Recorder, psnr_of
from .descent.steps import Schedule, Stepper, Update, float32
from .errors import ConfigError
from .fast import linear as fastops
from .images import to_uint8
from .models.pool import load_model
from .models.taps import tap_path
from .models.weights import LoadedModel
from .result import ProgressFn, Result

FINAL_KEYS = ("embedding_distance", "input_distance", "psnr", "ssim")


def _batch(images, configs: Sequence[ReconstructConfig], lm: LoadedModel) -> torch.Tensor:
    """The images as one ``(B, 3, H, W)`` float32 batch on the model's device, checked against the model."""
    if isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[0] == len(configs):
        img = images.to(lm.device, torch.float32)
    else:
        img = torch.cat([(im if im.dim() == 4 else im.unsqueeze(0)) for im in images]).to(lm.device, torch.float32)
    B, _, H, W = img.shape  # (B, 3, H, W)
    if B != len(configs):
        raise ConfigError(f"{B} images for {len(configs)} configs.")
    if H != lm.size or W != lm.size:
        raise ConfigError(f"{lm.ref.name} takes {lm.size}x{lm.size} images, not {H}x{W}; prepare the image at "
                          f"the model's size.")
    return img


def _shared(configs: Sequence[ReconstructConfig]) -> list[ReconstructConfig]:
    configs = [validate(c) for c in configs]
    for c in configs[1:]:
        diff = [f for f in SHARED_FIELDS if getattr(c, f) != getattr(configs[0], f)]
        if diff:
            raise ConfigError(f"Batched reconstructions must share {', '.join(diff)}.")
    return configs


def reconstruct_many(images: Sequence[torch.Tensor] | torch.Tensor, configs: Sequence[ReconstructConfig],
                     progress: Optional[ProgressFn] = None, lm: Optional[LoadedModel] = None,
                     tf32: bool = False) -> list[Result]:
    """Run several reconstructions that share a model and schedule as one batch.

    ``images[i]`` (``(1, 3, H, W)`` or ``(3, H, W)``, [0,1]) is reconstructed
    from ``configs[i].tap`` with ``configs[i].surgery``; taps, surgery, seeds,
    init, normalisation and positional embedding may differ per row.
    ``tf32`` lets a GPU use TF32 matrix products whatever the configs say
    (benchmarks/gpu_precision.py measures what that changes).  The configs'
    ``precision`` (resolved by :func:`validate`) sets the model's products:
    in bf16 the targets, the baseline and every step's forward are the bf16
    model's, in tf32 a GPU's products are TF32; the image, losses, update
    and metrics are float32.
    """
    configs = _shared(configs)
    c0 = configs[0]
    lm = lm or load_model(c0.model, c0.device, precision=c0.precision)
    img, dev = _batch(images, configs, lm), lm.device
    B, _, H, W = img.shape
    paths = [tap_path(lm, c.tap, c.surgery, c.pos_embed, c.normalize) for c in configs]
    shift, a = pixel_starts(configs, H, W)
    tf32 = tf32 or c0.precision == "tf32"
    with float32(dev, tf32), fastops.compute(c0.precision):  # the targets and the bar from the model the descent runs
        objective = EmbeddingMatch(img, paths, shift.to(dev), c0.loss, c0.loss_scale)
    a = a.to(dev)
    schedule = Schedule(c0.steps, (c0.lr_start, c0.lr_end), (c0.blur_start, c0.blur_end))
    stepper = Stepper(c0.optimizer, a.shape, dev)
    stepper.scaled = dev.type == "cuda"  # a captured graph must carry the scale (1.0 gives the same bits)
    update = Update(stepper, schedule, c0.clamp)
    recorder = Recorder(a, ("loss",) + FINAL_KEYS, c0.steps, c0.report_every, progress,
                        [b["embedding_distance"] for b in objective.baselines],
                        derive=lambda v: {**v, "psnr": psnr_of(v["mse"])})
    rows = Rows(B, c0.steps, BlowupGuard(B, c0.backoff), recorder.record, recorder.report, on_restore=stepper.back_off)
    with float32(dev, tf32), fastops.compute(c0.precision):
        graph = CudaGraphStep.make(a, objective.forward, objective.metrics, update.apply, schedule, paths,
                                   reset=stepper.reset)
        if graph is not None:  # CUDA: one graph replay per step
            replay(graph, rows, objective.forward, objective.metrics, c0.report_every)
        else:  # the eager loop: CPU, short runs, or graphs switched off
            descend(a, rows, objective.forward, objective.metrics, update, c0.report_every,
                    1 if dev.type == "cpu" else c0.report_every)
    seconds = recorder.seconds
    return [Result(config=c, status=rows.status[i], steps=rows.steps_of(i), seconds=seconds, device=str(dev),
                   weights_identity=lm.identity, target=to_uint8(img[i]), image=recorder.last[i],
                   curves=recorder.curves[i], baseline=objective.baselines[i], final=recorder.final(i, FINAL_KEYS),
                   snapshots=recorder.snapshots_of(i), backoffs=rows.guard.backoffs[i])
            for i, c in enumerate(configs)]


def reconstruct(image: torch.Tensor, config: ReconstructConfig, progress: Optional[ProgressFn] = None,
                lm: Optional[LoadedModel] = None) -> Result:
    """Reconstruct one image from one layer; see :func:`reconstruct_many`."""
    return reconstruct_many([image], [config], progress, lm)[0]
