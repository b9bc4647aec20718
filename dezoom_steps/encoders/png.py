"""Streaming PNG writer: the canvas is read, filtered and deflated block by block of rows.

Layout of the file: signature, IHDR (8-bit grey, RGB or RGBA as the canvas, no interlace), the
metadata chunks (iCCP, pHYs, iTXt title and XMP, tEXt Software), IDAT chunks of about 1 MiB, IEND.
Every row uses the Up filter (type 2), computed with numpy over a block of rows; the last row of
one block is carried as the "prior row" of the next. Memory is bounded by a few blocks.

Deflate runs in worker threads (zlib releases the GIL): each block of filtered rows is compressed
as raw deflate primed with the last 32 KiB of the previous block (`zdict`) and ends with a sync
flush, so the blocks join into one ordinary zlib stream; the main thread writes the 2-byte zlib
header, the blocks in order, an empty final block and the Adler-32 of all the filtered bytes.

The optional `isal` package (`isal.isal_zlib`, the same API as `zlib`, several times faster) is
used when it can be imported; otherwise the standard library's zlib.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

from dezoom_steps.canvas import Canvas
from dezoom_steps.outmeta import OutputMeta

try:  # optional accelerator: same API as zlib, levels 0-3
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _isal_zlib = None

SIGNATURE = b"\x89PNG\r\n\x1a\n"
UP_FILTER = 2
BLOCK_BYTES = 4 << 20  # filtered bytes per deflate job
IDAT_BYTES = 1 << 20  # payload size at which an IDAT chunk is flushed
WINDOW = 32 << 10  # deflate window: the primed dictionary of each block
COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # PNG colour type by channels: greyscale, truecolour, truecolour + alpha
METRES_PER_INCH = 0.0254
# An empty final deflate block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block.
FINAL_EMPTY_BLOCK = b"\x03\x00"


def backend_name() -> str:
    """The deflate implementation in use: "isal" or "zlib"."""
    return "isal" if _isal_zlib is not None else "zlib"


def compression_tier(compression: int) -> int:
    """0 (fast), 1 (default) or 2 (best) for a dezoomify-rs `compression` value (0-100).

    Spec §10.2: "compression 0-19 -> fast, 20-60 -> default, 61-100 -> best".
    """
    return 0 if compression < 20 else 1 if compression <= 60 else 2


def zlib_level(compression: int) -> int:
    """The standard zlib level for `compression`: 1 / 6 / 9 for fast / default / best."""
    return (1, 6, 9)[compression_tier(compression)]


def deflate_level(compression: int) -> int:
    """The level for the deflate backend in use: zlib's (1 / 6 / 9) or isal's (1 / 2 / 3 of 0-3)."""
    if _isal_zlib is not None:
        return (1, 2, 3)[compression_tier(compression)]
    return zlib_level(compression)


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def latin1_keyword(text: str) -> bytes:
    """A PNG keyword: 1-79 Latin-1 characters."""
    return text.encode("latin-1", "replace")[:79]


def itxt(keyword: str, text: str) -> bytes:
    """An uncompressed iTXt chunk: UTF-8 text under a Latin-1 keyword (PNG 1.2 §4.2.3.3)."""
    return chunk(b"iTXt", latin1_keyword(keyword) + b"\0\0\0\0\0" + text.encode("utf-8"))


def metadata_chunks(meta: OutputMeta) -> list[bytes]:
    """iCCP, pHYs, iTXt (Title, Description, XMP) and tEXt (Software) chunks for `meta`."""
    out = []
    if meta.icc:
        # iCCP: profile name, NUL, compression method 0 (deflate), zlib stream of the profile.
        out.append(chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc, 9)))
    if meta.dpi:
        ppm = [round(d / METRES_PER_INCH) for d in meta.dpi]
        out.append(chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))  # unit 1: metre
    if meta.title:
        out.append(itxt("Title", meta.title))
    if meta.source:
        out.append(itxt("Description", meta.description()))
    out.append(itxt("XML:com.adobe.xmp", meta.xmp().decode("utf-8")))
    out.append(chunk(b"tEXt", latin1_keyword("Software") + b"\0" + latin1_keyword(meta.software)))
    return out


def zlib_header(level: int) -> bytes:
    """The two zlib header bytes (deflate, 32 KiB window) with FLEVEL matching `level`."""
    cmf = 0x78
    flevel = 0 if level <= 1 else 1 if level < 6 else 2 if level == 6 else 3
    flg = flevel << 6
    flg += 31 - (cmf * 256 + flg) % 31
    return bytes((cmf, flg))


def up_filter(block: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Rows of `block` (n, row_bytes) filtered with Up against `prior` (the row above the block).

    Returns (n, 1 + row_bytes) uint8: the filter type byte, then Raw(x) - Prior(x) modulo 256.
    """
    n, row_bytes = block.shape
    out = np.empty((n, row_bytes + 1), dtype=np.uint8)
    out[:, 0] = UP_FILTER
    np.subtract(block[0], prior, out=out[0, 1:])
    np.subtract(block[1:], block[:-1], out=out[1:, 1:])
    return out


def _deflate_block(data: np.ndarray | bytes, zdict: bytes, level: int) -> bytes:
    """Raw deflate of one block, primed with the previous block's tail, ending on a sync flush."""
    lib = _isal_zlib if _isal_zlib is not None else zlib
    kwargs = {"zdict": zdict} if zdict else {}
    comp = lib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, **kwargs)
    return comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)


class _IdatWriter:
    """Buffers compressed bytes and writes them out as IDAT chunks of about IDAT_BYTES."""

    def __init__(self, out: BinaryIO, idat_bytes: int):
        self.out, self.idat_bytes, self.pending = out, idat_bytes, bytearray()

    def add(self, data: bytes, final: bool = False) -> None:
        """Queue compressed bytes; write a chunk when enough have gathered (or at the end)."""
        self.pending += data
        if len(self.pending) >= self.idat_bytes or (final and self.pending):
            self.out.write(chunk(b"IDAT", bytes(self.pending)))
            self.pending.clear()


def write_png(
    canvas: Canvas, out: BinaryIO, compression: int = 5, *, threads: int = 2,
    block_bytes: int = BLOCK_BYTES, idat_bytes: int = IDAT_BYTES, meta: OutputMeta | None = None,
) -> None:
    """Write `canvas` to the binary file `out` as an 8-bit grey, RGB or RGBA PNG, streaming."""
    width, height = canvas.width, canvas.height
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ValueError(f"PNG cannot hold a {width}x{height} image")
    level = deflate_level(compression)
    row_bytes = width * canvas.channels
    rows_per_block = max(1, block_bytes // (row_bytes + 1))
    out.write(SIGNATURE)
    # IHDR: width, height, bit depth 8, colour type, deflate, adaptive filtering, no interlace.
    out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPE[canvas.channels], 0, 0, 0)))
    for extra in metadata_chunks(meta or OutputMeta()):
        out.write(extra)
    idat = _IdatWriter(out, idat_bytes)
    idat.add(zlib_header(level))
    prior = np.zeros(row_bytes, dtype=np.uint8)
    adler, zdict = 1, b""
    in_flight: deque[Future[bytes]] = deque()
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        for y in range(0, height, rows_per_block):
            block = canvas.read_rows(y, rows_per_block).reshape(-1, row_bytes)
            data = up_filter(block, prior).reshape(-1)  # zlib reads the array's buffer: no copy
            prior = block[-1].copy()
            adler = zlib.adler32(data, adler)
            if pool is None:
                idat.add(_deflate_block(data, zdict, level))
            else:
                in_flight.append(pool.submit(_deflate_block, data, zdict, level))
                while len(in_flight) > threads:
                    idat.add(in_flight.popleft().result())
            zdict = data[-WINDOW:].tobytes()
        while in_flight:
            idat.add(in_flight.popleft().result())
    finally:
        if pool is not None:
            for fut in in_flight:
                fut.cancel()
            pool.shutdown(wait=True)
    idat.add(FINAL_EMPTY_BLOCK + struct.pack(">I", adler), final=True)
    out.write(chunk(b"IEND", b""))
