"""The stitched canvas on disk: an uncompressed, contiguous BigTIFF read and written by rows.

It holds 1 (grey), 3 (RGB) or 4 (RGBA) 8-bit samples per pixel, as the tiles need.

Pixels are written with `os.pwrite` at their offset and read back with `os.pread`, so memory
stays bounded by the strip in hand, not by the image (a memory map would count every page
touched in the process's resident set). Any TIFF reader can open the canvas.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile


CHANNELS = (1, 3, 4)  # grey, RGB, RGBA


class Canvas:
    """An open canvas file: `write_rows` / `read_rows` of full-width uint8 row blocks (n, width, channels)."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, offset: int, fd: int,
                 channels: int = 3):
        self.path = Path(path)
        self.width, self.height, self.offset, self._fd = width, height, offset, fd
        self.channels = channels

    @property
    def row_bytes(self) -> int:
        """Bytes in one row of pixels."""
        return self.width * self.channels

    def write_rows(self, y: int, rows: np.ndarray, x: int = 0) -> None:
        """Write a (n, w, channels) uint8 block whose top left pixel is canvas pixel (x, y).

        A full-width block is one write; a narrower one is written row by row.
        """
        n, w = rows.shape[:2]
        if rows.shape[2:] != (self.channels,) or y + n > self.height or x + w > self.width or min(x, y) < 0:
            raise ValueError(f"rows {rows.shape} at ({x}, {y}) do not fit a {self.width}x{self.height} canvas")
        if w == self.width:
            data = np.ascontiguousarray(rows, dtype=np.uint8)
            os.pwrite(self._fd, memoryview(data).cast("B"), self.offset + y * self.row_bytes)
            return
        start = self.offset + y * self.row_bytes + x * self.channels
        for i in range(n):
            row = np.ascontiguousarray(rows[i], dtype=np.uint8)
            os.pwrite(self._fd, memoryview(row).cast("B"), start + i * self.row_bytes)

    def read_rows(self, y: int, n: int) -> np.ndarray:
        """Read `n` rows starting at canvas row `y` as a (n, width, channels) uint8 array."""
        n = max(0, min(n, self.height - y))
        buf = bytearray(n * self.row_bytes)
        view = memoryview(buf)
        got, pos = 0, self.offset + y * self.row_bytes
        while got < len(buf):
            k = os.preadv(self._fd, [view[got:]], pos + got)
            if k == 0:  # sparse tail never written: zeros, which is black
                break
            got += k
        return np.frombuffer(buf, dtype=np.uint8).reshape(n, self.width, self.channels)

    def close(self) -> None:
        """Close the file descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Canvas":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_canvas(path: str | os.PathLike[str], width: int, height: int, channels: int = 3) -> Canvas:
    """Create a canvas file of `width` x `height` pixels, all zero (black, or transparent with alpha).

    The file is sparse until written, and opened for writing.
    """
    if channels not in CHANNELS:
        raise ValueError(f"a canvas has 1, 3 or 4 channels, not {channels}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = {1: {"shape": (height, width), "photometric": "minisblack"},
              3: {"shape": (height, width, 3), "photometric": "rgb"},
              4: {"shape": (height, width, 4), "photometric": "rgb", "extrasamples": ["unassalpha"]}}
    offset, _size = tifffile.imwrite(
        path, dtype=np.uint8, bigtiff=True, returnoffset=True, metadata=None, **layout[channels],
    )
    return Canvas(path, width, height, offset, os.open(path, os.O_RDWR), channels)


def open_canvas(path: str | os.PathLike[str]) -> Canvas:
    """Open an existing canvas file for reading rows."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        channels = page.samplesperpixel
        if not page.is_contiguous or page.dtype != np.uint8 or channels not in CHANNELS:
            raise ValueError(f"{path}: not a dezoom-steps canvas (contiguous uint8 TIFF, 1, 3 or 4 samples)")
        height, width = page.imagelength, page.imagewidth
        offset = page.dataoffsets[0]
    return Canvas(path, width, height, offset, os.open(path, os.O_RDONLY), channels)
