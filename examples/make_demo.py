"""Build the embedded demo input: a synthetic image cut into a DeepZoom (DZI) pyramid.

Run from anywhere: `python3 examples/make_demo.py`. It (re)writes, next to this file:
    demo/source.png              the full-resolution source, for pixel comparisons in tests
    demo/demo.dzi                the DeepZoom descriptor
    demo/demo_files/{level}/{col}_{row}.jpg   the tiles
The picture is drawn by this script (gradients, shapes, a grid and a label), deterministically.

DeepZoom rules followed (spec §4.5): max_level = ceil(log2(max(W, H))); each lower level is the
previous size halved and rounded up, down to 1x1; tile (c, r) of a level covers
[c*T - (O if c > 0 else 0), (c+1)*T + O) horizontally (the same vertically), clipped to the level.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 800
TILE_SIZE, OVERLAP, QUALITY = 256, 1, 90
HERE = Path(__file__).resolve().parent / "demo"
DZI = """<?xml version="1.0" encoding="UTF-8"?>
<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="{t}" Overlap="{o}" Format="jpg">
  <Size Width="{w}" Height="{h}"/>
</Image>
"""


def draw_source(width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """The demo picture: a colour gradient background, a grid, shapes and a label."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 40 + 180 * x / width
    g = 60 + 150 * y / height
    b = 120 + 100 * np.sin(2 * np.pi * (x + y) / (width + height))
    img = Image.fromarray(np.stack([r, g, b], axis=-1).round().clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for gx in range(0, width, 100):  # a grid every 100 px, labelled
        d.line([(gx, 0), (gx, height)], fill=(255, 255, 255), width=1)
    for gy in range(0, height, 100):
        d.line([(0, gy), (width, gy)], fill=(255, 255, 255), width=1)
    d.ellipse([120, 140, 420, 440], fill=(230, 70, 50), outline=(20, 20, 20), width=6)
    d.rectangle([520, 180, 820, 380], fill=(40, 160, 90), outline=(250, 250, 250), width=4)
    d.polygon([(900, 560), (1120, 560), (1010, 360)], fill=(250, 210, 40), outline=(30, 30, 30))
    d.regular_polygon((300, 620, 110), 6, fill=(90, 60, 200), outline=(255, 255, 255))
    for i in range(12):  # a fan of thin lines: fine detail that shows any misplaced tile
        d.line([(600, 700), (600 + 50 * math.cos(i * math.pi / 11) * 5, 700 - 250 * math.sin(i * math.pi / 11))],
               fill=(10, 10, 10), width=2)
    font = _font(56)
    d.text((width // 2, 60), "dezoom-steps demo", fill=(255, 255, 255), font=font, anchor="mm",
           stroke_width=3, stroke_fill=(0, 0, 0))
    for gx in range(0, width, 100):
        for gy in range(0, height, 100):
            d.text((gx + 4, gy + 2), f"{gx // 100},{gy // 100}", fill=(255, 255, 255), font=_font(14))
    return img


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at `size` (a bitmap font when FreeType is not available)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """Sizes of levels 0..max_level: the full size halved (rounded up) until 1x1, reversed."""
    max_level = math.ceil(math.log2(max(width, height))) if max(width, height) > 1 else 0
    sizes = [(width, height)]
    for _ in range(max_level):
        w, h = sizes[-1]
        sizes.append((-(-w // 2), -(-h // 2)))
    return sizes[::-1]


def tile_box(col: int, row: int, size: tuple[int, int], t: int = TILE_SIZE,
             o: int = OVERLAP) -> tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom) of tile (col, row) in a level of `size`, overlap included."""
    left = col * t - (o if col > 0 else 0)
    top = row * t - (o if row > 0 else 0)
    return left, top, min((col + 1) * t + o, size[0]), min((row + 1) * t + o, size[1])


def build(out: Path = HERE) -> None:
    """Write source.png, demo.dzi and every tile of the pyramid under `out`."""
    src = draw_source()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "demo_files", ignore_errors=True)
    src.save(out / "source.png", optimize=True)
    (out / "demo.dzi").write_text(DZI.format(t=TILE_SIZE, o=OVERLAP, w=WIDTH, h=HEIGHT))
    for level, size in enumerate(level_sizes(WIDTH, HEIGHT)):
        img = src if size == src.size else src.resize(size, Image.Resampling.LANCZOS)
        folder = out / "demo_files" / str(level)
        folder.mkdir(parents=True)
        for row in range(-(-size[1] // TILE_SIZE)):
            for col in range(-(-size[0] // TILE_SIZE)):
                img.crop(tile_box(col, row, size)).save(folder / f"{col}_{row}.jpg", quality=QUALITY, optimize=True)


if __name__ == "__main__":
    build()
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"wrote {HERE} ({total / 1024:.0f} KiB)")
