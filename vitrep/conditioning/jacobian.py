"""A tap's Jacobian as a batched operator, and the spectra of a batch of configs that share a model.

``J v`` by forward-mode AD (``torch.func.jvp``) and ``J^T u`` by the pullback
of one ``torch.func.vjp`` (its graph kept for every product).  CPU attention
runs its plain math kernel meanwhile (the fused kernels have no forward-mode
derivative).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Optional, Sequence

import torch

from ..config import ReconstructConfig
from ..errors import ConfigError
from ..models.pool import load_model
from ..models.taps import run_paths, tap_path
from ..models.weights import LoadedModel
from ..result import Progress
from .config import ConditionConfig
from .lanczos import Operator, spectrum_of
from .spectrum import Spectrum


@contextlib.contextmanager
def forward_mode_friendly():
    """Attention on its plain math kernel for the duration: the fused CPU kernels have no forward-mode derivative
    (torch.func.jvp).  Changes only float rounding; runs hold the device queue meanwhile."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mha = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(mha)


def tap_operator(lm: LoadedModel, configs: Sequence[ReconstructConfig], image: torch.Tensor) -> tuple[Operator, list]:
    """The batched Jacobian of each config's tap at ``image`` (``(1, 3, H, W)``), and the output shapes."""
    x0 = image.to(lm.device, torch.float32).expand(len(configs), -1, -1, -1).contiguous()
    paths = [tap_path(lm, c.tap, c.surgery, c.pos_embed, c.normalize, fast=False) for c in configs]

    def f(x):
        return tuple(o.reshape(-1) for o in run_paths(x, paths))

    outs, pull = torch.func.vjp(f, x0)
    sizes = {o.numel() for o in outs}
    if len(sizes) != 1:
        raise ConfigError("Rows of one spectrum batch must have taps of one size; run them apart.")
    m, n, B = sizes.pop(), x0[0].numel(), len(configs)

    def jv(v):
        _, t = torch.func.jvp(f, (x0,), (v.reshape(x0.shape),))
        return torch.stack(t)

    def jtu(u):
        (g,) = pull(tuple(u[b] for b in range(B)))
        return g.reshape(B, -1)

    return Operator(jv, jtu, n, m, B, lm.device), [tuple(o.shape) for o in outs]


def start_noise(config: ReconstructConfig, image: torch.Tensor) -> torch.Tensor:
    """The reconstruction's starting noise a_0 for this config (drawn as :func:`vitrep.reconstruction` draws it)."""
    g = torch.Generator().manual_seed(config.seed)
    _, _, H, W = image.shape
    torch.randn(3, H, W, generator=g)  # the a' baseline's noise comes first
    return (torch.randn(3, H, W, generator=g) * config.init_std + config.init_mean).unsqueeze(0)


def condition_many(image: torch.Tensor, configs: Sequence[ConditionConfig], progress=None,
                   lm: Optional[LoadedModel] = None) -> list[Spectrum]:
    """Spectra of several configs that share a model and estimator settings, as one batch."""
    c0 = configs[0]
    for c in configs[1:]:
        if c.recon.model != c0.recon.model or (c.k, c.iterations, c.probes, c.seed) != (c0.k, c0.iterations, c0.probes, c0.seed):
            raise ConfigError("Spectra batched together must share the model and the estimator's settings.")
    image = image if image.dim() == 4 else image.unsqueeze(0)
    lm = lm or load_model(c0.recon.model, c0.recon.device)
    if image.shape[-1] != lm.size:
        raise ConfigError(f"{lm.ref.name} takes {lm.size}x{lm.size} images, not {image.shape[-1]}; prepare the image "
                          f"at the model's size.")
    t0 = time.perf_counter()
    with forward_mode_friendly():
        op, _ = tap_operator(lm, [c.recon for c in configs], image)
        direction = torch.cat([image - start_noise(c.recon, image) for c in configs]).to(lm.device)
        steps = c0.lanczos_steps(op.dim)

        def tell(step, largest):
            if progress is None:
                return False
            rows = [{"step": step, "sigma_max": math.sqrt(float(t))} for t in largest]
            return bool(progress(Progress(step, steps, time.perf_counter() - t0, rows, [])))

        rows = spectrum_of(op, c0, direction, tell)
    return [Spectrum(c, op.n, op.m, "output" if op.m < op.n else "input", r["sigma_top"], r["top_residual"],
                     r["top_error"], r["top_change"], r["sigma_bottom"], r["bottom_residual"], r["bottom_error"],
                     r["bottom_change"], r["frobenius_sq"],
                     r["frobenius_sq_se"], r["gain"], r["iterations"], op.matvecs, time.perf_counter() - t0, r["status"])
            for c, r in zip(configs, rows)]
