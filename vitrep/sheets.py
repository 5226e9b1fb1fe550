"""Contact sheets: labelled tiles in a grid, as one PNG."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def contact_sheet(tiles: Sequence[tuple[np.ndarray, str]], title: str = "", cols: int | None = None,
                  tile: int = 192, caption_lines: int = 3) -> Image.Image:
    """``tiles`` of (uint8 image, caption with newlines) -> one labelled grid image."""
    n = len(tiles)
    cols = cols or min(n, 6) or 1
    rows = math.ceil(n / cols) if n else 1
    font, tfont = _font(12), _font(16)
    line_h, pad = 15, 8
    head = 28 if title else 0
    cell_h = tile + caption_lines * line_h + pad
    sheet = Image.new("RGB", (cols * (tile + pad) + pad, head + rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 6), title, fill="black", font=tfont)
    for i, (img, caption) in enumerate(tiles):
        r, c = divmod(i, cols)
        x, y = pad + c * (tile + pad), head + pad + r * cell_h
        im = Image.fromarray(img)
        im.thumbnail((tile, tile), Image.Resampling.LANCZOS if max(im.size) > tile else Image.Resampling.NEAREST)
        if max(im.size) < tile:
            f = tile // max(im.size)
            im = im.resize((im.width * f, im.height * f), Image.Resampling.NEAREST)
        sheet.paste(im, (x + (tile - im.width) // 2, y + (tile - im.height) // 2))
        for j, line in enumerate(caption.split("\n")[:caption_lines]):
            draw.text((x, y + tile + 2 + j * line_h), line[:34], fill="black", font=font)
    return sheet
