"""Contact sheets: labelled tiles in a grid, as one PNG, with optional verdict lines under the title."""

from __future__ import annotations

import math
import textwrap
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _colour(line: str) -> str:
    return "#146c2e" if line.startswith("HELD") else "#b3261e" if line.startswith("NOT HELD") else "#333333"


def contact_sheet(tiles: Sequence[tuple[np.ndarray, str]], title: str = "", cols: int | None = None,
                  tile: int = 224, caption_lines: int = 3, subtitle: str | Sequence[str] = "") -> Image.Image:
    """``tiles`` of (uint8 image, caption with newlines) -> one labelled grid image.

    Captions are 15 px type (legible at normal zoom), each line wrapped to the
    tile's width (never cut); every cell has room for the longest caption,
    at least ``caption_lines`` lines; ``subtitle`` (a line or
    several: a figure's verdicts) is wrapped under the title, each line
    coloured by its verdict (HELD green, NOT HELD red, the rest dark grey).
    """
    n = len(tiles)
    cols = cols or min(n, 6) or 1
    rows = math.ceil(n / cols) if n else 1
    font, tfont = _font(15), _font(20)
    line_h, pad = 18, 10
    width = max(cols * (tile + pad) + pad, 760)  # room for the title and the finding on a one-panel figure
    chars = int(tile / 7.6)  # characters of 15 px type that fit under a tile
    captions = [[part for line in caption.split("\n") for part in (textwrap.wrap(line, width=chars) or [""])]
                for _, caption in tiles]
    caption_lines = max([caption_lines] + [len(c) for c in captions])
    heading = textwrap.wrap(title, width=int(width / 10.5)) if title else []
    lines = [subtitle] if isinstance(subtitle, str) else list(subtitle)
    sub = [(part, _colour(line)) for line in lines if line for part in textwrap.wrap(line, width=int(width / 8.4))]
    top = len(heading) * 26 + (8 if heading else 0)
    head = top + len(sub) * line_h + (8 if sub else 0)
    cell_h = tile + caption_lines * line_h + pad
    sheet = Image.new("RGB", (width, head + rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, line in enumerate(heading):
        draw.text((pad, 8 + j * 26), line, fill="black", font=tfont)
    for j, (line, colour) in enumerate(sub):
        draw.text((pad, top + j * line_h), line, fill=colour, font=font)
    for i, ((img, _), caption) in enumerate(zip(tiles, captions)):
        r, c = divmod(i, cols)
        x, y = pad + c * (tile + pad), head + pad + r * cell_h
        im = Image.fromarray(img)
        im.thumbnail((tile, tile), Image.Resampling.LANCZOS if max(im.size) > tile else Image.Resampling.NEAREST)
        if max(im.size) < tile:
            f = tile // max(im.size)
            im = im.resize((im.width * f, im.height * f), Image.Resampling.NEAREST)
        sheet.paste(im, (x + (tile - im.width) // 2, y + (tile - im.height) // 2))
        for j, line in enumerate(caption):
            draw.text((x, y + tile + 2 + j * line_h), line, fill="black", font=font)
    return sheet
