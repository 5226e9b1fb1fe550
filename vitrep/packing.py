"""Results as bytes: JSON metadata and named numpy arrays in one compressed npz blob, never a pickle.

The disk memo (:mod:`vitrep.running.memo`) stores these bytes; the result
types (:mod:`vitrep.result`, class images, spectra) write and read them.
"""

from __future__ import annotations

import io
import json

import numpy as np


def pack(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """JSON metadata plus named numpy arrays as one compressed npz blob (no pickle)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def unpack(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of :func:`pack`; raises on damaged data (the memo then recomputes)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes().decode())
        return meta, {k: z[k] for k in z.files if k != "__meta__"}

