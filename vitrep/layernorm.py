"""Why layer norm is not invertible, with numbers.

Layer norm maps a vector ``x`` to ``(x - mean(x)) / std(x)`` (then a learned
scale and shift): every shift and positive scaling of ``x`` gives the same
output, so a mean and a spread per token are lost.  The paper's example:
``[0, 2, 4]``, ``[-1, 0, 1]`` and ``[2.1, 2.2, 2.3]`` all become
``[-1.22, 0, 1.22]``.  In a ViT each token is one image patch, so after
``ln_1`` each patch's own offset and contrast are gone, and a reconstruction
may give each patch its own brightness: the patchwork look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError

PAPER_VECTORS = ((0.0, 2.0, 4.0), (-1.0, 0.0, 1.0), (2.1, 2.2, 2.3))  # the paper's three vectors
EPS = 1e-5


@dataclass
class LNRow:
    vector: list[float]
    mean: float
    std: float
    output: list[float]


def layer_norm(v, eps: float = EPS) -> np.ndarray:
    """Plain layer norm without the learned affine part (torch's, so it is the models' own arithmetic)."""
    t = torch.as_tensor(np.asarray(v, dtype=np.float64))
    return torch.nn.functional.layer_norm(t, t.shape[-1:], eps=eps).numpy()


def parse_vector(text: str) -> list[float]:
    """``"1, 2, 3"`` or ``"[1 2 3]"`` -> floats; at least two distinct numbers."""
    parts = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    try:
        v = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{text!r} is not a list of numbers like '1, 2, 3'.") from None
    if len(v) < 2:
        raise ConfigError("A vector needs at least two numbers for layer norm to mean anything.")
    if not all(np.isfinite(v)):
        raise ConfigError("Vector entries must be finite numbers.")
    return v


def explain(vectors=PAPER_VECTORS, eps: float = EPS) -> list[LNRow]:
    rows = []
    for v in vectors:
        a = np.asarray(v, dtype=np.float64)
        rows.append(LNRow(list(map(float, a)), float(a.mean()), float(a.std()), list(map(float, layer_norm(a, eps)))))
    return rows


def same_output(vectors, tol: float = 1e-3) -> bool:
    """Do all vectors map to one layer-norm output (within ``tol``)?"""
    outs = [layer_norm(v) for v in vectors]
    return all(o.shape == outs[0].shape and np.abs(o - outs[0]).max() < tol for o in outs)


def preimages(v, shifts=(-1.0, 0.0, 3.0), scales=(0.5, 1.0, 4.0)) -> list[list[float]]:
    """Other inputs with the same output as ``v``: ``scale * v + shift``, for a user to check."""
    a = np.asarray(v, dtype=np.float64)
    return [list(map(float, s * a + b)) for s in scales for b in shifts]


def patch_invariance(lm, image: torch.Tensor, patch: int = 0, scale: float = 3.0, shift: float = 2.0) -> dict:
    """In a ViT: scale and shift one patch's token; ``ln_1`` of encoder 1 gives the same output for it.

    Returns the token change before the norm and the output change after it
    (relative), showing that the norm cannot tell the two patches apart.
    """
    from .models.taps import forward_tap

    with torch.no_grad():
        tokens = forward_tap(lm, image.to(lm.device), "stem")  # (1, N, D)
        changed = tokens.clone()
        changed[0, patch] = changed[0, patch] * scale + shift
        ln = lm.module.encoder.layers[0].ln_1
        a, b = ln(tokens)[0, patch], ln(changed)[0, patch]
    return {"token_change": float((changed[0, patch] - tokens[0, patch]).norm() / tokens[0, patch].norm()),
            "output_change": float((a - b).norm() / a.norm())}
