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

RESIZE_MODES = ("crop", "pad", "stretch")


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


def file_limit_bytes() -> int:
    """The largest image file taken: :data:`MAX_FILE_BYTES`, or public mode's smaller limit."""
    from .limits import image_limit_bytes

    public = image_limit_bytes()
    return MAX_FILE_BYTES if public is None else min(public, MAX_FILE_BYTES)


def _too_large(label: str, size: int, limit: int) -> ImageError:
    return ImageError(f"{label} is {size / 2**20:.0f} MB, more than the {limit / 2**20:.0f} MB limit for images.")


def _read_bytes(source: ImageSource) -> tuple[bytes, str]:
    """The bytes of an image source, read at most up to the size limit (never an endless read)."""
    limit = file_limit_bytes()
    if isinstance(source, (bytes, bytearray)):
        if len(source) > limit:
            raise _too_large("The uploaded image", len(source), limit)
        return bytes(source), "the uploaded data"
    if hasattr(source, "read"):
        label = getattr(source, "name", "the uploaded file")
        data = source.read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"{label} is more than the {limit / 2**20:.0f} MB limit for images.")
        return data, label
    path = Path(source)
    label = path.name
    if not path.exists():
        raise ImageError(f"The image file {str(path)!r} does not exist.")
    if path.is_dir():
        raise ImageError(f"{str(path)!r} is a folder, not an image file.")
    if not path.is_file():  # a device (/dev/zero), a FIFO, a socket: no end, or no data until someone writes
        raise ImageError(f"{str(path)!r} is not a regular file, so it cannot be an image.")
    size = path.stat().st_size
    if size > limit:
        raise _too_large(label, size, limit)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)  # a file that grows while read stops at the limit too
    except OSError as exc:
        raise ImageError(f"The image file {str(path)!r} cannot be read ({exc.strerror or 'error'}).") from None
    if len(data) > limit:
        raise _too_large(label, len(data), limit)
    return data, label


ROWS_AT_ONCE = 256  # a high-bit-depth image is scaled to 8 bits this many rows at a time


def _wide_to_rgb(img: Image.Image, label: str) -> Image.Image:
    """A 16-bit, 32-bit integer or float greyscale image as 8-bit RGB, in bounded memory.

    The image's own pixels (PIL's, and one numpy view of them) plus a uint8
    result; the scaling runs in float32 over :data:`ROWS_AT_ONCE` rows at a
    time, never a float64 copy of the whole image.  16-bit: ``x / 65535``;
    ``I`` within 0..255 or 0..65535: divided by that; anything else (float
    images) stretched from its minimum to its maximum, unless already in
    [0, 1].  A pixel that is not a number (NaN, infinite) is refused with
    one sentence rather than turned black.
    """
    mode = img.mode
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        finite = all(np.isfinite(arr[i:i + ROWS_AT_ONCE]).all() for i in range(0, arr.shape[0], ROWS_AT_ONCE))
        if not finite:
            who = "T" + label[1:] if label.startswith("the ") else label  # a sentence starts with a capital
            raise ImageError(f"{who} has pixels that are not numbers (NaN or infinite); save it with finite "
                             f"values, or as an 8- or 16-bit image.")
    lo, hi = float(arr.min()), float(arr.max())
    if mode.startswith("I;16"):
        offset, scale = 0.0, 1 / 65535.0
    elif mode == "I" and lo >= 0 and hi <= 65535:
        offset, scale = 0.0, 1 / (255.0 if hi <= 255 else 65535.0)
    elif lo >= 0.0 and hi <= 1.0:
        offset, scale = 0.0, 1.0
    elif hi > lo:
        offset, scale = lo, 1 / (hi - lo)
    else:
        offset, scale = lo, 0.0
    out = np.empty(arr.shape, np.uint8)
    for i in range(0, arr.shape[0], ROWS_AT_ONCE):
        part = (arr[i:i + ROWS_AT_ONCE].astype(np.float32) - np.float32(offset)) * np.float32(scale)
        out[i:i + ROWS_AT_ONCE] = np.clip(part, 0, 1) * 255 + 0.5
    del arr
    return Image.fromarray(out, "L").convert("RGB")


def _to_rgb(img: Image.Image, label: str = "the image") -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _wide_to_rgb(img, label)
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
    return _to_rgb(img, label)


def fit_image(img: Image.Image, size: int, mode: str = "crop") -> Image.Image:
    """Fit an RGB image to ``size x size``.

    ``crop`` (default) scales the short side to ``size`` and takes the centre,
    keeping proportions; ``pad`` scales the long side to ``size`` and fills
    the rest with the image's mean colour, keeping everything; ``stretch`` is
    the paper's plain resize to the square.
    """
    if mode not in RESIZE_MODES:
        raise ImageError(f"Resize mode {mode!r} is not known; use one of {', '.join(RESIZE_MODES)}.")
    if mode == "stretch":
        return img.resize((size, size), Image.Resampling.BICUBIC)
    if mode == "pad":
        mean = tuple(int(round(v)) for v in np.asarray(img.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)))
        return ImageOps.pad(img.convert("RGB"), (size, size), Image.Resampling.BICUBIC, color=mean)
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
