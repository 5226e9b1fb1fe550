"""Image loading: every valid mode becomes RGB and reconstructs; every bad file gets its sentence."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vitrep.errors import ImageError
from vitrep.images import fit_image, load_image, prepare, sample_path, to_tensor
from vitrep.config import make_config
from vitrep.reconstruction import reconstruct

from .conftest import ROOT, run_cli


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(mode_size=(48, 40)) -> np.ndarray:
    w, h = mode_size
    x = np.linspace(0, 1, w)[None, :] * np.ones((h, 1))
    return x


def _valid_images() -> dict[str, bytes]:
    g = _gradient()
    rgb = Image.fromarray((np.stack([g, g[::-1], 1 - g], -1) * 255).astype(np.uint8), "RGB")
    out = {
        "RGB": _png(rgb),
        "RGBA": _png(rgb.convert("RGBA")),
        "LA": _png(rgb.convert("LA")),
        "L": _png(rgb.convert("L")),
        "1": _png(rgb.convert("1")),
        "P": _png(rgb.convert("P")),
        "CMYK-jpeg": _png(rgb.convert("CMYK"), "JPEG"),
        "I;16": _png(Image.fromarray((g * 65535).astype(np.uint16))),
        "I-tiff": _png(Image.fromarray((g * 40000).astype(np.int32), "I"), "TIFF"),
        "F-tiff": _png(Image.fromarray((g * 3 - 1).astype(np.float32), "F"), "TIFF"),
        "webp": _png(rgb, "WEBP"),
        "bmp": _png(rgb, "BMP"),
    }
    p = rgb.convert("P")
    out["P-transparent"] = _png(p, transparency=0)
    frames = [rgb, rgb.rotate(90, expand=False), rgb.rotate(180)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out["animated-gif"] = buf.getvalue()
    return out


VALID = _valid_images()


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_mode_loads_as_rgb_and_reconstructs(name, tiny_ref):
    img = load_image(VALID[name])
    assert img.mode == "RGB" and img.size == (48, 40)
    t = to_tensor(fit_image(img, 32))
    assert t.shape == (1, 3, 32, 32) and 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    r = reconstruct(t, make_config(tiny_ref, 1, steps=3, report_every=1))
    assert r.status == "done" and r.image.shape == (32, 32, 3)


def test_sixteen_bit_keeps_its_range():
    g = _gradient()
    img = load_image(_png(Image.fromarray((g * 65535).astype(np.uint16))))
    arr = np.asarray(img)[..., 0]
    assert arr.min() == 0 and arr.max() == 255  # not saturated to white, not crushed to black


def test_transparency_composited_on_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    assert np.asarray(load_image(_png(rgba)))[0, 0].tolist() == [255, 255, 255]


def test_first_frame_of_animation():
    a = Image.new("RGB", (16, 16), (255, 0, 0))
    b = Image.new("RGB", (16, 16), (0, 0, 255))
    buf = io.BytesIO()
    a.save(buf, "GIF", save_all=True, append_images=[b])
    px = np.asarray(load_image(buf.getvalue()))[0, 0]
    assert px[0] > 200 and px[2] < 50


def test_exif_orientation_applied():
    img = Image.new("RGB", (60, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = load_image(_png(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 60)


def test_fit_modes():
    img = load_image(sample_path("cat"))  # 451 x 300
    assert fit_image(img, 64).size == (64, 64)
    assert fit_image(img, 64, "stretch").size == (64, 64)
    crop = np.asarray(fit_image(img, 64), dtype=float)
    stretch = np.asarray(fit_image(img, 64, "stretch"), dtype=float)
    assert np.abs(crop - stretch).mean() > 1.0  # the two really differ
    with pytest.raises(ImageError, match="Resize mode"):
        fit_image(img, 64, "squash")


def _truncated() -> bytes:
    data = _png(Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)))
    return data[: len(data) // 2]


def _bomb() -> bytes:
    return _png(Image.new("1", (9000, 9000)))  # 81 megapixels, a few kB on disk


BAD = {
    "not an image": (b"hello, this is text and not a picture", "not an image file"),
    "empty": (b"", "empty"),
    "truncated": (_truncated(), "damaged or truncated"),
    "bomb": (_bomb(), "megapixel limit"),
    "tiny": (_png(Image.new("RGB", (3, 3))), "at least 8 pixels"),
    "sliver": (_png(Image.new("RGB", (2000, 20))), "too elongated"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_has_one_sentence(name):
    data, words = BAD[name]
    with pytest.raises(ImageError) as e:
        load_image(data)
    msg = str(e.value)
    assert words in msg and msg.endswith(".") and "\n" not in msg


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_cli_refuses_bad_files_with_a_sentence(tmp_path):
    for name in ("not an image", "truncated", "bomb"):
        f = tmp_path / f"{name.replace(' ', '_')}.png"
        f.write_bytes(BAD[name][0])
        p = run_cli("reconstruct", "--image", f, "--model", "vit_custom", "--steps", "2", "--out", tmp_path / "o")
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vitrep: ") and BAD[name][1] in lines[0]


def test_cli_reconstructs_unusual_modes(tmp_path):
    for name in ("I;16", "CMYK-jpeg", "animated-gif"):
        f = tmp_path / f"img.{'gif' if 'gif' in name else 'jpg' if 'jpeg' in name else 'png'}"
        f.write_bytes(VALID[name])
        p = run_cli("reconstruct", "--image", f, "--model", "vit_custom", "--steps", "3", "--quiet", "--no-cache",
                    "--out", tmp_path / name)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / name / "reconstruction.png").is_file()


def test_prepare_is_model_ready():
    t = prepare(sample_path("rocket"), 48)
    assert t.shape == (1, 3, 48, 48) and t.dtype.is_floating_point


# --- issue 19: inputs that cost too much, hang, or went silently wrong --------------------------------

def _cli_image(tmp_path, image: str):
    return subprocess.run([sys.executable, "-m", "vitrep", "reconstruct", "--image", image, "--model", "vit_custom",
                           "--steps", "2", "--quiet", "--no-cache", "--out", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def _one_sentence(p, words: str) -> None:
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vitrep: ") and words in lines[0], p.stderr


def test_a_float_image_with_a_nan_pixel_is_a_sentence_not_a_black_image(tmp_path):
    """One NaN in a float TIFF made the whole stretched image NaN, then silently black."""
    arr = (_gradient() * 3 - 1).astype(np.float32)
    arr[5, 7] = np.nan
    data = _png(Image.fromarray(arr, "F"), "TIFF")
    with pytest.raises(ImageError, match=r"^The uploaded data has pixels that are not numbers \(NaN or infinite\); "):
        load_image(data)
    arr[5, 7] = np.inf
    with pytest.raises(ImageError, match="not numbers"):
        load_image(_png(Image.fromarray(arr, "F"), "TIFF"))
    f = tmp_path / "nan.tiff"
    f.write_bytes(data)
    _one_sentence(_cli_image(tmp_path, str(f)), "nan.tiff has pixels that are not numbers")
    # a finite float image still loads, stretched from its minimum to its maximum
    arr[5, 7] = 0.25
    out = np.asarray(load_image(_png(Image.fromarray(arr, "F"), "TIFF")))
    assert out.min() == 0 and out.max() == 255


def test_a_36_megapixel_16_bit_png_decodes_in_bounded_memory(tmp_path):
    """An 80 KB, 6000 x 6000 16-bit PNG: the float64 decode took about 585 MB above the decoded pixels; the
    scaling now runs in float32 a few rows at a time (peak RSS of a fresh process, measured around the call)."""
    a = np.zeros((6000, 6000), np.uint16)
    a[::7, ::5] = 40000
    f = tmp_path / "wide.png"
    Image.fromarray(a).save(f)
    assert f.stat().st_size < 200_000 and Image.open(f).mode == "I;16"
    code = ("import resource, sys; from vitrep.images import load_image; data = open(sys.argv[1], 'rb').read(); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; img = load_image(data); "
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "print((after - before) / 1024, img.size, img.getpixel((5, 7)), img.getpixel((1, 1)))")
    p = subprocess.run([sys.executable, "-c", code, str(f)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    mb, rest = p.stdout.split(" ", 1)
    assert rest.split() == ["(6000,", "6000)", "(156,", "156,", "156)", "(0,", "0,", "0)"]  # 40000/65535*255 -> 156
    # the image's own 16-bit pixels (PIL's, numpy's: 144 MB) and its 8-bit RGB (108 MB) are the floor
    assert float(mb) < 330, mb


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_an_endless_or_blocking_file_is_a_sentence(tmp_path, kind):
    """``--image /dev/zero`` read until a MemoryError; a FIFO blocked forever.  Now: not a regular file."""
    import os

    path = kind
    if kind == "fifo":
        path = str(tmp_path / "pipe.png")
        os.mkfifo(path)
    with pytest.raises(ImageError, match=r"is not a regular file, so it cannot be an image\.$"):
        load_image(path)
    _one_sentence(_cli_image(tmp_path, path), "is not a regular file")


def test_public_mode_refuses_large_images_in_the_engine(monkeypatch):
    """The 8 MB image limit of a public server holds for every caller, not only the dashboard's uploader."""
    big = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (1800, 1800, 3), dtype=np.uint8)))
    assert len(big) > 8 * 2 ** 20
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    with pytest.raises(ImageError, match=r"^The uploaded image is \d+ MB, more than the 8 MB limit for images\.$"):
        load_image(big)
    monkeypatch.delenv("VITREP_PUBLIC")
    assert load_image(big).size == (1800, 1800)
    with pytest.raises(ImageError, match="more than the 8 MB limit"):
        monkeypatch.setenv("VITREP_PUBLIC", "1")
        load_image(io.BytesIO(big))


def test_pad_keeps_the_whole_image_and_fills_with_its_mean():
    from PIL import Image as PILImage

    from vitrep.images import fit_image

    img = PILImage.new("RGB", (40, 20), (200, 10, 10))
    out = np.asarray(fit_image(img, 20, "pad"))
    assert out.shape == (20, 20, 3)
    assert tuple(out[0, 10]) == (200, 10, 10) and tuple(out[10, 10]) == (200, 10, 10)  # mean colour = the colour
