"""Tiled BigTIFF writer (tifffile), fed tile by tile from canvas strips.

Compression: JPEG at quality 100 - compression when `imagecodecs` can be imported (tifffile
needs it to encode JPEG; the file is then YCbCr 4:2:0), otherwise lossless deflate with the
horizontal predictor, which tifffile can do with the standard library's zlib alone. Memory
holds one row of tiles from the canvas plus tifffile's bounded compression buffer.
"""

from __future__ import annotations

import importlib.util
from typing import BinaryIO, Iterator

import numpy as np
import tifffile

from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders.jpeg import quality_for
from dezoom_steps.encoders.png import zlib_level

TILE = 256  # TIFF tile side; a multiple of 16 as JPEG 4:2:0 tiles require
BUFFER_BYTES = 32 << 20  # tifffile's compression buffer (its default of 256 MB is not needed)


def has_imagecodecs() -> bool:
    """True when tifffile can encode JPEG tiles (the imagecodecs package is importable)."""
    return importlib.util.find_spec("imagecodecs") is not None


def compression_settings(compression: int) -> dict:
    """The tifffile `compression`, `compressionargs` and `predictor` arguments to use."""
    if has_imagecodecs():
        return {"compression": "jpeg", "compressionargs": {"level": quality_for(compression)}}
    return {"compression": "zlib", "compressionargs": {"level": zlib_level(compression)}, "predictor": True}


def canvas_tiles(canvas: Canvas, tile: int = TILE) -> Iterator[np.ndarray]:
    """The canvas cut into tiles in row-major order, reading one row of tiles at a time."""
    for y in range(0, canvas.height, tile):
        strip = canvas.read_rows(y, tile)
        for x in range(0, canvas.width, tile):
            yield strip[:, x:x + tile]


def write_tiff(canvas: Canvas, out: BinaryIO, compression: int = 5, *, threads: int = 2) -> None:
    """Write `canvas` to the seekable binary file `out` as a tiled, compressed RGB BigTIFF."""
    with tifffile.TiffWriter(out, bigtiff=True) as tif:
        tif.write(
            canvas_tiles(canvas), shape=(canvas.height, canvas.width, 3), dtype=np.uint8,
            tile=(TILE, TILE), photometric="rgb", metadata=None, maxworkers=threads,
            buffersize=BUFFER_BYTES, **compression_settings(compression),
        )
