"""A streaming PNG reader for tests: checks the file's structure and yields its rows block by block.

It never holds the image: IDAT payloads are inflated with `zlib.decompressobj` in bounded
pieces, and the filters of each row are undone against the previous row only. Strict: the
signature, every chunk's CRC-32, IHDR first and valid, IDAT chunks consecutive, one zlib stream
holding exactly height x (1 + row bytes) bytes with a correct Adler-32, IEND last with nothing
after it. 8-bit, non-interlaced images only (what dezoom-steps writes).

Filters: None, Sub and Up are undone with numpy; Average and Paeth (which depend on the pixel
just decoded to their left) with a plain Python loop, fine for the small images Pillow writes
in the unit test of this reader, far too slow for gigapixels (dezoom-steps uses Up).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

try:  # the same inflate API, about twice as fast as the standard library's
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - depends on the environment
    _inflate_lib = zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
INFLATE_PIECE = 16 << 20  # at most this many inflated bytes at a time


class PngError(ValueError):
    """The file is not a valid PNG (or not one this reader handles)."""


@dataclass(frozen=True)
class Header:
    """The IHDR fields."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    compression: int
    filter_method: int
    interlace: int

    @property
    def channels(self) -> int:
        """Samples per pixel."""
        return CHANNELS[self.colour_type]

    @property
    def row_bytes(self) -> int:
        """Bytes of one unfiltered row."""
        return self.width * self.channels


def chunks(f: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of every chunk after the signature, each CRC checked, up to and including IEND."""
    if f.read(8) != SIGNATURE:
        raise PngError("not a PNG signature")
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise PngError("file ends before IEND")
        length, kind = struct.unpack(">I4s", head)
        if length > 2**31 - 1:
            raise PngError(f"{kind!r} chunk length {length} exceeds 2^31-1")
        data = f.read(length)
        crc = f.read(4)
        if len(data) < length or len(crc) < 4:
            raise PngError(f"file ends inside the {kind!r} chunk")
        if struct.unpack(">I", crc)[0] != zlib.crc32(data, zlib.crc32(kind)):
            raise PngError(f"bad CRC in a {kind!r} chunk")
        yield kind, data
        if kind == b"IEND":
            if data:
                raise PngError("IEND is not empty")
            if f.read(1):
                raise PngError("data after IEND")
            return


def parse_header(data: bytes) -> Header:
    """The IHDR chunk's fields, validated for what this reader handles."""
    if len(data) != 13:
        raise PngError(f"IHDR holds {len(data)} bytes, not 13")
    hdr = Header(*struct.unpack(">IIBBBBB", data))
    if not (0 < hdr.width < 2**31 and 0 < hdr.height < 2**31):
        raise PngError(f"bad size {hdr.width}x{hdr.height}")
    if hdr.colour_type not in CHANNELS or hdr.bit_depth != 8:
        raise PngError(f"colour type {hdr.colour_type} at {hdr.bit_depth} bits is not handled")
    if (hdr.compression, hdr.filter_method, hdr.interlace) != (0, 0, 0):
        raise PngError("unknown compression/filter method or interlaced image")
    return hdr


def unfilter_row(kind: int, row: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    """One row's raw bytes from its filtered bytes (`row`) and the raw row above (`prior`)."""
    if kind == 0:
        return row.copy()
    if kind == 1:
        return np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
    if kind == 2:
        return row + prior  # uint8 arithmetic wraps modulo 256
    if kind in (3, 4):
        out = bytearray(len(row))
        filt, up = row.tobytes(), prior.tobytes()
        for i in range(len(out)):
            a = out[i - bpp] if i >= bpp else 0
            b = up[i]
            if kind == 3:
                pred = (a + b) >> 1
            else:
                c = up[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out[i] = (filt[i] + pred) & 0xFF
        return np.frombuffer(bytes(out), dtype=np.uint8)
    raise PngError(f"unknown filter type {kind}")


class PngStream:
    """An open PNG: `header`, `filters` (count per filter type, filled while reading), `rows()`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = open(self.path, "rb")
        self._chunks = chunks(self._file)
        kind, data = next(self._chunks)
        if kind != b"IHDR":
            raise PngError(f"first chunk is {kind!r}, not IHDR")
        self.header = parse_header(data)
        self.ancillary: list[tuple[bytes, bytes]] = []  # chunks other than IHDR/IDAT/IEND, in order
        self.idat_chunks = 0
        self.filters = [0] * 5  # rows seen per filter type
        self._prior = np.zeros(self.header.row_bytes, dtype=np.uint8)  # the last raw row read

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> "PngStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _inflated(self) -> Iterator[bytes]:
        """The zlib stream of the IDAT chunks, inflated in pieces of at most INFLATE_PIECE bytes."""
        z = _inflate_lib.decompressobj()
        seen_idat = ended = False
        for kind, data in self._chunks:
            if kind == b"IDAT":
                if ended:
                    raise PngError("IDAT chunks are not consecutive")
                seen_idat = True
                self.idat_chunks += 1
                while data:
                    piece = z.decompress(data, INFLATE_PIECE)
                    data = z.unconsumed_tail
                    if piece:
                        yield piece
                if z.eof and (z.unused_data or data):
                    raise PngError("bytes after the end of the zlib stream")
            else:
                ended = seen_idat
                if kind == b"IEND":
                    break
                if kind == b"IHDR":
                    raise PngError("a second IHDR")
                self.ancillary.append((kind, data))
        if not seen_idat:
            raise PngError("no IDAT chunk")
        if not z.eof:
            raise PngError("the zlib stream is truncated")

    def rows(self, block_bytes: int = 8 << 20) -> Iterator[tuple[int, np.ndarray]]:
        """(y, pixels) blocks in order: pixels is (n, width, channels) uint8, about block_bytes each."""
        hdr = self.header
        stride = hdr.row_bytes + 1
        per_block = max(1, block_bytes // stride)
        self._prior = np.zeros(hdr.row_bytes, dtype=np.uint8)
        pending = bytearray()
        y = 0
        for piece in self._inflated():
            pending += piece
            if len(pending) > (hdr.height - y) * stride:
                raise PngError(f"more image data than the {hdr.height} rows IHDR declares")
            while len(pending) >= per_block * stride:
                yield y, self._unfilter(pending, per_block, y)
                y += per_block
        whole = len(pending) // stride
        if whole:
            yield y, self._unfilter(pending, whole, y)
            y += whole
        if pending or y != hdr.height:
            raise PngError(f"image data holds {y} rows and {len(pending)} extra bytes; "
                           f"IHDR says {hdr.height} rows")

    def _unfilter(self, pending: bytearray, n: int, y: int) -> np.ndarray:
        """Take n filtered rows off the front of `pending`; return them unfiltered as (n, width, channels)."""
        hdr = self.header
        stride = hdr.row_bytes + 1
        filtered = np.frombuffer(pending, dtype=np.uint8, count=n * stride).copy().reshape(n, stride)
        del pending[:n * stride]
        kinds = np.bincount(filtered[:, 0], minlength=256)
        if kinds[5:].any():
            raise PngError(f"rows {y}-{y + n - 1}: unknown filter type {int(np.flatnonzero(kinds[5:])[0]) + 5}")
        for k in range(5):
            self.filters[k] += int(kinds[k])
        out = np.empty((n, hdr.row_bytes), dtype=np.uint8)
        prior = self._prior
        for i in range(n):
            kind = filtered[i, 0]
            if kind == 2:  # Up, the common case: in place, uint8 addition wraps modulo 256
                np.add(filtered[i, 1:], prior, out=out[i])
            else:
                out[i] = unfilter_row(int(kind), filtered[i, 1:], prior, hdr.channels)
            prior = out[i]
        self._prior = out[-1].copy()
        return out.reshape(n, hdr.width, hdr.channels)
