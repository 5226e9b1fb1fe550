"""Spectra through the disk memo: hits read, misses computed as batches of one tap size, queued per device."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..images import content_hash
from ..models.registry import resolve_device
from ..models.weights import weights_identity
from ..running.memo import Memo, make_key, torch_release
from ..running.runs import device_lock
from .config import ConditionConfig
from .jacobian import condition_many
from .spectrum import Spectrum


def condition_key(image: torch.Tensor, config: ConditionConfig) -> str:
    d = config.to_dict()
    d["recon"]["device"] = resolve_device(config.recon.device).type
    for k in ("steps", "optimizer", "lr_start", "lr_end", "loss", "loss_scale", "blur_start", "blur_end", "clamp",
              "report_every", "backoff", "resize"):
        d["recon"].pop(k, None)  # what the descent does is not the Jacobian's business
    return make_key("condition", image=content_hash(image), config=d, weights=weights_identity(config.recon.model),
                    torch=torch_release())


def run_condition(image: torch.Tensor, configs: Sequence[ConditionConfig], memo: Optional[Memo] = None,
                  progress=None, on_wait=None, queue_limit: Optional[int] = None) -> list[Spectrum]:
    """Spectra through the disk memo, misses computed as batches of one tap size, queued for the device."""
    keys = [condition_key(image, c) for c in configs]
    out: list = [memo.get(k, Spectrum.from_bytes) if memo is not None else None for k in keys]
    todo = [i for i, r in enumerate(out) if r is None]
    groups: dict = {}
    for i in todo:
        groups.setdefault(_shape_group(configs[i]), []).append(i)
    for rows in groups.values():
        def compute(idx: list[int], rows=rows) -> list[Spectrum]:
            picked = [configs[rows[j]] for j in idx]
            with device_lock(picked[0].recon.device, on_wait, queue_limit):
                return condition_many(image, picked, progress)

        if memo is None:
            batch = compute(list(range(len(rows))))
        else:
            batch = memo.get_or_compute_many([keys[i] for i in rows], compute, Spectrum.to_bytes, Spectrum.from_bytes,
                                             keep=lambda s: s.status == "done")
        for i, s in zip(rows, batch):
            out[i] = s
        if any(s.status == "stopped" for s in batch):
            break
    return out


def _shape_group(c: ConditionConfig) -> tuple:
    """Rows that can share a batch: one model, one estimator, one tap (so one output size)."""
    return (c.recon.model, c.recon.tap, c.recon.pos_embed, c.recon.normalize, c.k, c.iterations, c.probes, c.seed)
