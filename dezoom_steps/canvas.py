"""The stitched canvas on disk: an uncompressed, contiguous RGB BigTIFF read and written by rows.

Pixels are written with `os.pwrite` at their offset and read back with `os.pread`, so memory
stays bounded by the strip in hand, not by the image (a memory map would count every page
touched in the process's resident set). Any TIFF reader can open the canvas.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile


class Canvas:
    """An open canvas file: `write_rows` / `read_rows` of full-width RGB uint8 row blocks."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, offset: int, fd: int):
        self.path = Path(path)
        self.width, self.height, self.offset, self._fd = width, height, offset, fd

    @property
    def row_bytes(self) -> int:
        """Bytes in one row of pixels."""
        return self.width * 3

    def write_rows(self, y: int, rows: np.ndarray) -> None:
        """Write a (n, width, 3) uint8 block whose first row is canvas row `y`."""
        if rows.shape[1:] != (self.width, 3) or y + rows.shape[0] > self.height:
            raise ValueError(f"rows {rows.shape} at y={y} do not fit a {self.width}x{self.height} canvas")
        data = np.ascontiguousarray(rows, dtype=np.uint8)
        os.pwrite(self._fd, memoryview(data).cast("B"), self.offset + y * self.row_bytes)

    def read_rows(self, y: int, n: int) -> np.ndarray:
        """Read `n` rows starting at canvas row `y` as a (n, width, 3) uint8 array."""
        n = max(0, min(n, self.height - y))
        buf = bytearray(n * self.row_bytes)
        view = memoryview(buf)
        got, pos = 0, self.offset + y * self.row_bytes
        while got < len(buf):
            k = os.preadv(self._fd, [view[got:]], pos + got)
            if k == 0:  # sparse tail never written: zeros, which is black
                break
            got += k
        return np.frombuffer(buf, dtype=np.uint8).reshape(n, self.width, 3)

    def close(self) -> None:
        """Close the file descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Canvas":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_canvas(path: str | os.PathLike[str], width: int, height: int) -> Canvas:
    """Create a black (sparse) canvas file of `width` x `height` RGB pixels and open it for writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    offset, _size = tifffile.imwrite(
        path, shape=(height, width, 3), dtype=np.uint8, bigtiff=True, photometric="rgb",
        returnoffset=True, metadata=None,
    )
    return Canvas(path, width, height, offset, os.open(path, os.O_RDWR))


def open_canvas(path: str | os.PathLike[str]) -> Canvas:
    """Open an existing canvas file for reading rows."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if not page.is_contiguous or page.dtype != np.uint8 or page.shape[-1:] != (3,):
            raise ValueError(f"{path}: not a dezoom-steps canvas (contiguous RGB uint8 TIFF)")
        height, width = page.shape[:2]
        offset = page.dataoffsets[0]
    return Canvas(path, width, height, offset, os.open(path, os.O_RDONLY))
