"""Images in and out: load, validate, orient, convert to RGB, fit to a model.

Everything a user hands us passes through :func:`load_image`, which either
returns an RGB ``PIL.Image`` or raises :class:`~vitrep.errors.ImageError` with
one sentence.  Tensors are always float32 in [0, 1], shape ``(1, 3, H, W)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

ImageSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO, Image.Image]

MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; larger is a decompression bomb to us
MAX_FILE_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8
MAX_ASPECT = 20.0

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"
SAMPLES = {
    "cat": "chelsea.png",
    "coffee": "coffee.png",
    "astronaut": "astronaut.png",
    "rocket": "rocket.jpg",
}

RESIZE_MODES = ("crop", "stretch")


def sample_path(name: str) -> Path:
    """Path of a bundled sample image by short name (``cat``, ``coffee``, ...)."""
    if name not in SAMPLES:
        raise ImageError(f"There is no bundled sample called {name!r}; choose one of {', '.join(SAMPLES)}.")
    return SAMPLES_DIR / SAMPLES[name]


def image_source(text: str) -> Path:
    """A user's image argument: a bundled sample's name (unless a file of that name exists) or a file path."""
    if text in SAMPLES and not Path(text).exists():
        return sample_path(text)
    return Path(text).expanduser()


def _read_bytes(source: ImageSource) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "the uploaded data"
    if hasattr(source, "read"):
        data = source.read()
        return data, getattr(source, "name", "the uploaded file")
    path = Path(source)
    label = path.name
    if not path.exists():
        raise ImageError(f"The image file {str(path)!r} does not exist.")
    if path.is_dir():
        raise ImageError(f"{str(path)!r} is a folder, not an image file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{label} is {size / 2**20:.0f} MB, more than the {MAX_FILE_BYTES // 2**20} MB limit.")
    return path.read_bytes(), label


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 65535.0
        else:
            lo, hi = float(arr.min()), float(arr.max())
            if mode == "I" and lo >= 0 and hi <= 65535:
                arr = arr / (255.0 if hi <= 255 else 65535.0)
            elif not (lo >= 0.0 and hi <= 1.0):
                arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        grey = Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
        return grey.convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:  # e.g. LAB in some Pillow builds
        raise ImageError(f"Images in colour mode {mode} are not supported; save it as RGB PNG or JPEG.") from exc


def load_image(source: ImageSource) -> Image.Image:
    """Load an image from a path, bytes, file object or PIL image as 8-bit RGB.

    Applies the EXIF orientation, takes the first frame of an animation and
    converts any mode (RGBA, L, P, CMYK, 16-bit, float) to RGB.  Raises
    :class:`ImageError` for anything that is not a usable image.
    """
    if isinstance(source, Image.Image):
        img, label = source, "the image"
    else:
        data, label = _read_bytes(source)
        if not data:
            raise ImageError(f"{label} is empty (0 bytes), not an image.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        f"{label} is {w}x{h} pixels, more than the {MAX_PIXELS // 1_000_000} megapixel limit."
                    )
                img.seek(0)
                img.load()
        except ImageError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise ImageError(f"{label} is not an image file vitrep can read (PNG, JPEG, WebP, GIF, TIFF, BMP ...).") from exc
            raise ImageError(f"{label} is too large to decode safely (a possible decompression bomb).") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{label} is damaged or truncated and cannot be decoded.") from exc
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label} is {w}x{h} pixels; each side must be at least {MIN_SIDE} pixels.")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ImageError(f"{label} is {w}x{h} pixels, too elongated (more than {MAX_ASPECT:.0f}:1) to fit a square model input.")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose the picture
        pass
    return _to_rgb(img)


def fit_image(img: Image.Image, size: int, mode: str = "crop") -> Image.Image:
    """Fit an RGB image to ``size x size``.

    ``crop`` (default) scales the short side to ``size`` and takes the centre,
    keeping proportions; ``stretch`` is the page's plain resize to the square.
    """
    if mode not in RESIZE_MODES:
        raise ImageError(f"Resize mode {mode!r} is not known; use one of {', '.join(RESIZE_MODES)}.")
    if mode == "stretch":
        return img.resize((size, size), Image.Resampling.BICUBIC)
    return ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 tensor ``(1, 3, H, W)`` in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """Tensor ``(3, H, W)`` or ``(1, 3, H, W)`` -> uint8 array ``(H, W, 3)``, clamped to [0, 1]."""
    if t.dim() == 4:
        t = t[0]
    arr = t.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


def to_pil(t: torch.Tensor | np.ndarray) -> Image.Image:
    """Tensor in [0, 1] or uint8 ``(H, W, 3)`` array -> PIL RGB image."""
    arr = t if isinstance(t, np.ndarray) else to_uint8(t)
    return Image.fromarray(arr, "RGB")


def prepare(source: ImageSource, size: int, mode: str = "crop") -> torch.Tensor:
    """Load, fit and convert in one call: the model-ready ``(1, 3, size, size)`` tensor."""
    return to_tensor(fit_image(load_image(source), size, mode))


def content_hash(t: torch.Tensor) -> str:
    """Hash of a prepared image's pixels: the same picture is the same key, whatever its file format."""
    h = hashlib.sha256()
    h.update(str(tuple(t.shape)).encode())
    h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]
