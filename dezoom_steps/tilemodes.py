"""Which canvas a set of tiles needs: grey, RGB or RGBA, read from the tiles' headers only.

JPEG and PNG headers are parsed by hand (the frame header's component count; PNG's colour type
and a tRNS chunk), which costs a few microseconds a tile; other formats are asked to Pillow,
which also reads only the header. Pure functions on bytes.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

GREY, RGB, ALPHA = 1, 3, 4  # canvas channels each kind needs
HEAD_BYTES = 4096  # enough for the headers of almost every tile; more is read when not
# JPEG frame markers: SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class NeedMore(Exception):
    """The header runs past the bytes given: read the whole tile and ask again."""


def jpeg_kind(data: bytes) -> int:
    """GREY or RGB for a JPEG: one component is grey, three (YCbCr/RGB) or four (CMYK) are colour."""
    return GREY if jpeg_frame(data)[0] == 1 else RGB


def jpeg_frame(data: bytes) -> tuple[int, int, int, int]:
    """(components, width, height, SOF marker) from a JPEG's frame header."""
    pos = 2
    while True:
        if pos + 4 > len(data):
            raise NeedMore
        if data[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if marker in SOF_MARKERS:
            if pos + 10 > len(data):
                raise NeedMore
            height, width = struct.unpack_from(">HH", data, pos + 5)  # after the length and P
            return data[pos + 9], width, height, marker  # Nf follows X
        if marker == 0xDA:
            raise ValueError("JPEG scan before its frame header")
        pos += 2 + length


def png_kind(data: bytes) -> int:
    """GREY, RGB or ALPHA for a PNG, from IHDR's colour type and a tRNS chunk before IDAT."""
    if len(data) < 33:
        raise NeedMore
    colour_type = data[25]
    if colour_type in (4, 6):  # grey + alpha, RGBA
        return ALPHA
    pos = 33  # after IHDR
    while True:
        if pos + 8 > len(data):
            raise NeedMore
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"tRNS":
            return ALPHA
        if kind in (b"IDAT", b"IEND"):
            return GREY if colour_type == 0 else RGB
        pos += 12 + length


def pillow_kind(data: bytes) -> int:
    """GREY, RGB or ALPHA for any format Pillow opens (header only)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode in ALPHA_MODES or "transparency" in img.info:
            return ALPHA
        return GREY if img.mode in GREY_MODES else RGB


def tile_kind(data: bytes) -> int | None:
    """GREY, RGB or ALPHA for tile bytes; None when the header cannot be read (the tile is unusable).

    Raises NeedMore when `data` is only the start of the tile and the header goes past it.
    """
    try:
        if data.startswith(b"\xff\xd8"):
            return jpeg_kind(data)
        if data.startswith(PNG_SIGNATURE):
            return png_kind(data)
    except (ValueError, struct.error):
        return None
    try:
        return pillow_kind(data)
    except Exception:  # truncated or unknown: Pillow raises many kinds; the stitch will report it
        return None


def canvas_channels(kinds: list[int | None]) -> int:
    """The canvas for tiles of these kinds: RGBA if any has alpha, grey if all are grey, else RGB."""
    seen = {k for k in kinds if k is not None}
    if ALPHA in seen:
        return ALPHA
    if seen == {GREY}:
        return GREY
    return RGB
