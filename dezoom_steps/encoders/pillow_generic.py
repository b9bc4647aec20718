"""Any other format Pillow can write (WebP, BMP, GIF, ...), from the whole image in memory.

Unlike the PNG, JPEG and TIFF writers this one reads the entire canvas and hands it to Pillow,
which copies it into its own 4-bytes-per-pixel buffer: about 7 bytes per pixel at the peak.
`check_output_feasible` refuses images above the memory budget before anything is downloaded.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from PIL import Image

from dezoom_steps.canvas import Canvas
from dezoom_steps.outmeta import OutputMeta

BYTES_PER_PIXEL = 8  # canvas read (3) + Pillow's RGB storage (4) + encoder slack


def pillow_format(ext: str) -> str | None:
    """The Pillow format name that writes files with extension `ext` (".webp"), or None."""
    Image.init()
    fmt = Image.registered_extensions().get(ext.lower())
    return fmt if fmt is not None and fmt in Image.SAVE else None


def save_options(fmt: str, compression: int) -> dict:
    """Pillow save options for `fmt`: lossy formats get quality = 100 - compression."""
    if fmt == "WEBP":
        return {"quality": max(1, min(100, 100 - compression))}
    return {}


def can_write_rgb(fmt: str) -> str | None:
    """None when Pillow writes an RGB image as `fmt`, else the reason it cannot (tried on 1x1)."""
    try:
        Image.new("RGB", (1, 1)).save(io.BytesIO(), fmt, **save_options(fmt, 5))
    except Exception as exc:  # Pillow raises OSError, KeyError, ValueError... depending on the plugin
        return str(exc) or type(exc).__name__
    return None


def write_pillow(canvas: Canvas, out: BinaryIO, fmt: str, compression: int = 5, *,
                 meta: OutputMeta | None = None) -> None:
    """Write `canvas` to `out` in Pillow format `fmt`, reading the whole canvas into memory.

    Grey and RGBA canvases keep their mode when the format takes it, else become RGB; the ICC
    profile and XMP go along where the plugin accepts them.
    """
    rows = canvas.read_rows(0, canvas.height)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[canvas.channels]
    # Pillow copies the pixels into its own 4 B/px storage, so the canvas rows can go at once.
    img = Image.frombytes(mode, (canvas.width, canvas.height), rows)
    del rows
    options = save_options(fmt, compression)
    if meta is not None and meta.icc:
        options["icc_profile"] = meta.icc
    if meta is not None and fmt in ("WEBP", "TIFF"):
        options["xmp"] = meta.xmp()
    start = out.tell()
    try:
        img.save(out, fmt, **options)
    except (OSError, ValueError, KeyError):
        if img.mode == "RGB":
            raise
        out.seek(start)
        out.truncate()  # this format cannot hold grey or alpha here: RGB then
        img.convert("RGB").save(out, fmt, **options)
