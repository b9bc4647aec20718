"""A synthetic Deep Zoom image of any size on disk, made of a few JPEG tiles reused through hard links.

The full-resolution level of a W x H image with T px tiles holds ceil(W/T) x ceil(H/T) tile
files, but only a handful of distinct images: tile (col, row) shows pattern
`(col + 3 * row) % KINDS`, a flat colour with a 64 px square of another colour at a place of
its own (16-aligned, so JPEG 4:2:0 keeps the edges sharp). Neighbours never share a pattern,
so a tile placed in the wrong cell, or a shifted row, changes the stitched pixels. Edge tiles
are the same patterns cropped, as a Deep Zoom server sends them. Every tile file of the same
pattern and size is a hard link to one JPEG, so a 2-gigapixel source takes a few hundred KB.

The expected stitched image is what the tile files decode to (Pillow), pasted at their cells:
`BigSource.expected(y, n, x, w)` gives any rectangle of it without building the whole image.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = 7  # distinct tile patterns; prime, so (col + 3 * row) % KINDS differs between neighbours
MARK = 64  # side of each pattern's marker square
# Pattern k: flat base colour and marker colour (RGB), far apart so the patterns never look alike.
BASES = [(200, 40, 40), (40, 170, 60), (50, 60, 190), (220, 200, 60), (150, 60, 170), (60, 180, 190), (120, 120, 120)]
MARKS = [(250, 250, 250), (10, 10, 10), (240, 140, 20), (20, 80, 30), (250, 220, 240), (90, 20, 20), (30, 30, 90)]


def deepzoom_top_level(width: int, height: int) -> int:
    """The Deep Zoom level number of the full resolution: ceil(log2(max(W, H)))."""
    return (max(width, height) - 1).bit_length()


def pattern(kind: int, tile: int) -> np.ndarray:
    """The full-size (tile, tile, 3) picture of pattern `kind`."""
    img = np.empty((tile, tile, 3), dtype=np.uint8)
    img[:] = BASES[kind]
    x, y = (32 + 64 * kind) % (tile - MARK), (32 + 48 * kind) % (tile - MARK)
    img[y:y + MARK, x:x + MARK] = MARKS[kind]
    return img


@dataclass
class BigSource:
    """A Deep Zoom tree on disk (`dzi` and its `_files` folder) and the image its tiles stitch into."""

    folder: Path
    width: int
    height: int
    tile: int
    _decoded: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def dzi(self) -> Path:
        """The metadata file: the input to give `dezoom`."""
        return self.folder / "big.dzi"

    @property
    def cols(self) -> int:
        """Tile columns of the full-resolution level."""
        return math.ceil(self.width / self.tile)

    @property
    def rows(self) -> int:
        """Tile rows of the full-resolution level."""
        return math.ceil(self.height / self.tile)

    @cached_property
    def level_dir(self) -> Path:
        """The folder of the full-resolution tiles (`big_files/<top level>`)."""
        return self.folder / "big_files" / str(deepzoom_top_level(self.width, self.height))

    def kind(self, col: int, row: int) -> int:
        """The pattern shown by tile (col, row)."""
        return (col + 3 * row) % KINDS

    def cell(self, col: int, row: int) -> tuple[int, int]:
        """(width, height) of tile (col, row): T x T, smaller in the last column and row."""
        return min(self.tile, self.width - col * self.tile), min(self.tile, self.height - row * self.tile)

    def proto_path(self, kind: int, w: int, h: int) -> Path:
        """The one JPEG file behind every tile of pattern `kind` and size w x h."""
        return self.folder / "protos" / f"k{kind}_{w}x{h}.jpg"

    def tile_pixels(self, col: int, row: int) -> np.ndarray:
        """What tile (col, row) decodes to, as the stitcher sees it (Pillow, RGB)."""
        w, h = self.cell(col, row)
        key = (self.kind(col, row), w, h)
        if key not in self._decoded:
            with Image.open(self.proto_path(*key)) as im:
                self._decoded[key] = np.asarray(im.convert("RGB"))
        return self._decoded[key]

    def expected(self, y: int, n: int, x: int = 0, w: int | None = None) -> np.ndarray:
        """The stitched pixels of rows y .. y+n-1 and columns x .. x+w-1 (default: to the right
        edge), clipped to the image, as (rows, cols, 3) uint8 built from the decoded tiles."""
        n, w = min(n, self.height - y), min(self.width - x if w is None else w, self.width - x)
        out = np.empty((n, w, 3), dtype=np.uint8)
        pos = y
        while pos < y + n:
            row, top = divmod(pos, self.tile)
            take = min(self.tile - top, y + n - pos)
            for col in range(x // self.tile, math.ceil((x + w) / self.tile)):
                px = self.tile_pixels(col, row)[top:top + take]
                left, right = max(x, col * self.tile), min(x + w, col * self.tile + px.shape[1])
                out[pos - y:pos - y + take, left - x:right - x] = px[:, left - col * self.tile:right - col * self.tile]
            pos += take
        return out


def make_big_source(folder: Path, width: int, height: int, tile: int = 512, quality: int = 90) -> BigSource:
    """Write big.dzi, the distinct tile JPEGs (protos/) and the level's tile files as hard links."""
    src = BigSource(Path(folder), width, height, tile)
    (src.folder / "protos").mkdir(parents=True, exist_ok=True)
    src.level_dir.mkdir(parents=True, exist_ok=True)
    src.dzi.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="{tile}" Overlap="0" Format="jpg">\n'
        f'  <Size Width="{width}" Height="{height}"/>\n</Image>\n', encoding="utf-8")
    for row in range(src.rows):
        for col in range(src.cols):
            w, h = src.cell(col, row)
            proto = src.proto_path(src.kind(col, row), w, h)
            if not proto.exists():
                Image.fromarray(pattern(src.kind(col, row), tile)[:h, :w]).save(proto, "JPEG", quality=quality)
            _link(proto, src.level_dir / f"{col}_{row}.jpg")
    return src


def _link(target: Path, link: Path) -> None:
    """Hard-link `link` to `target`; copy where the file system has no hard links."""
    try:
        os.link(target, link)
    except OSError:
        shutil.copyfile(target, link)
