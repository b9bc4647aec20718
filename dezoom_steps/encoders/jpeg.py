"""Memory-bounded JPEG writer: Pillow encodes strips that are spliced at restart markers.

Every strip is a whole number of 8 MCU rows (8 x 16 = 128 pixel rows with 4:2:0 subsampling),
encoded by Pillow with the same quality, standard Huffman tables (`optimize=False`) and a
restart marker after every MCU row (`restart_marker_rows=1`). DC prediction restarts at each
marker and libjpeg's 4:2:0 downsampling never looks across MCU rows, so the entropy-coded
segment of a strip does not depend on its neighbours. The file is then: the first strip's
headers with the frame height patched, each strip's entropy-coded data joined by RST7 (strip k
ends after MCU row 8k-1; that row's successor is preceded by RST((8k-1) mod 8) = RST7, and the
markers inside a strip are RST0..RST6 as Pillow numbered them), and EOI.
The result is byte-identical to a whole-image Pillow encode with the same settings (tested).

A grey canvas gives a one-component JPEG (MCU rows of 8 pixels, strips of 64 rows); an RGBA
canvas is composited on black, as JPEG has no alpha. The first strip carries the metadata
segments (JFIF density, EXIF, XMP, ICC profile), which the headers of the file keep.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image

from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders.limits import JPEG_MAX_SIDE
from dezoom_steps.errors import OutputError
from dezoom_steps.outmeta import OutputMeta

MCU_ROWS = 16  # pixel rows per MCU row with 4:2:0 subsampling
GREY_MCU_ROWS = 8  # pixel rows per MCU row of a one-component JPEG
STRIP_PIXELS = 4_000_000  # target pixels per encoded strip (Pillow holds it at 4 B/px)
SOF_MARKERS = {0xC0, 0xC1, 0xC2}
RST7 = b"\xff\xd7"
EOI = b"\xff\xd9"


def quality_for(compression: int) -> int:
    """JPEG quality for a dezoomify-rs `compression` value: 100 - compression (spec §10.2)."""
    return max(1, min(100, 100 - compression))


def save_options(quality: int) -> dict:
    """The Pillow save options shared by strips and by the whole-image reference encode."""
    return {"quality": quality, "optimize": False, "progressive": False,
            "subsampling": 2, "restart_marker_rows": 1}


def split_jpeg(data: bytes) -> tuple[bytes, bytes, int]:
    """Split a baseline JPEG into (headers up to and including SOS, entropy data, SOF offset)."""
    pos, sof = 2, -1
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in SOF_MARKERS:
            sof = pos
        if marker == 0xDA:  # SOS: entropy-coded data follows the segment
            start = pos + 2 + length
            if not data.endswith(EOI) or sof < 0:
                raise ValueError("JPEG without frame header or EOI")
            return data[:start], data[start:-2], sof
        pos += 2 + length
    raise ValueError("JPEG without SOS")


def patch_height(header: bytes, sof: int, height: int) -> bytes:
    """`header` with the frame height (SOF bytes 5-6) set to `height`."""
    return header[:sof + 5] + struct.pack(">H", height) + header[sof + 7:]


def metadata_options(meta: OutputMeta | None) -> dict:
    """Pillow save options that embed `meta`: ICC profile, EXIF (description, software), XMP, DPI."""
    if meta is None:
        return {}
    exif = Image.Exif()
    exif[0x0131] = meta.software  # Software
    if meta.description():
        exif[0x010E] = meta.description().encode("ascii", "replace").decode("ascii")  # ImageDescription
    options = {"exif": exif.tobytes(), "xmp": meta.xmp()}
    if meta.icc:
        options["icc_profile"] = meta.icc
    if meta.dpi:
        options["dpi"] = tuple(round(d) for d in meta.dpi)
    return options


def flatten(rows: np.ndarray) -> np.ndarray:
    """Rows a JPEG can hold: grey or RGB as they are, RGBA composited on black."""
    if rows.shape[2] != 4:
        return rows
    alpha = rows[:, :, 3:].astype(np.uint16)
    return ((rows[:, :, :3] * alpha + 127) // 255).astype(np.uint8)


def encode_rows(rows: np.ndarray, quality: int, meta: OutputMeta | None = None) -> bytes:
    """Pillow's JPEG encoding of a (n, w, 1 or 3) uint8 block with the strip settings (and `meta`)."""
    mode = "L" if rows.shape[2] == 1 else "RGB"
    img = Image.frombuffer(mode, (rows.shape[1], rows.shape[0]), rows.tobytes(), "raw", mode, 0, 1)
    buf = io.BytesIO()
    img.save(buf, "JPEG", **save_options(quality), **metadata_options(meta))
    return buf.getvalue()


def strip_unit(channels: int) -> int:
    """Pixel rows in 8 MCU rows: the granularity of strips for this many channels."""
    return 8 * (GREY_MCU_ROWS if channels == 1 else MCU_ROWS)


def strip_rows(width: int, channels: int = 3) -> int:
    """Pixel rows per strip: a multiple of 8 MCU rows holding about STRIP_PIXELS."""
    unit = strip_unit(channels)
    return unit * max(1, STRIP_PIXELS // (unit * width))


def write_jpeg(canvas: Canvas, out: BinaryIO, compression: int = 5, *, rows_per_strip: int | None = None,
               meta: OutputMeta | None = None) -> None:
    """Write `canvas` to `out` as a baseline JPEG (4:2:0 colour or grey), one strip in memory at a time."""
    width, height = canvas.width, canvas.height
    if max(width, height) > JPEG_MAX_SIDE:
        raise OutputError(f"JPEG cannot hold more than {JPEG_MAX_SIDE} pixels per side; "
                          f"use .png or .tif (the image is {width}x{height})")
    quality = quality_for(compression)
    step = rows_per_strip or strip_rows(width, canvas.channels)
    if step % strip_unit(canvas.channels):
        raise ValueError(f"rows_per_strip must be a multiple of {strip_unit(canvas.channels)}")
    for y in range(0, height, step):
        data = encode_rows(flatten(canvas.read_rows(y, step)), quality, meta if y == 0 else None)
        if y == 0 and step >= height:  # a single strip is the whole image
            out.write(data)
            return
        header, entropy, sof = split_jpeg(data)
        if y == 0:
            out.write(patch_height(header, sof, height))
        else:
            out.write(RST7)
        out.write(entropy)
    out.write(EOI)
