"""Output encoders, chosen by the output file's extension (case-insensitive).

    .png            streaming PNG (encoders/png.py), memory bounded
    .jpg .jpeg      JPEG spliced from Pillow strips (encoders/jpeg.py), memory bounded, <= 65535 px a side
    .tif .tiff      tiled (Big)TIFF with pyramid levels through tifffile (encoders/tiff.py), memory
                    bounded; server JPEG tiles copied as they are when they fit
    .iiif .dzi      folders of tiles: IIIF Image API level-0 tree with an offline viewer.html,
                    DeepZoom .dzi + _files (encoders/folders.py), memory bounded
    anything else   Pillow writes it by extension (.webp, .bmp, .gif, ...) from the whole image
                    in memory (encoders/pillow_generic.py), within a memory budget

Spec §10.2 compares extensions case-sensitively (".PNG" goes to the generic writer); here
".PNG" is a PNG like ".png".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dezoom_steps.encoders.limits import GIF_MAX_SIDE, JPEG_MAX_SIDE, PNG_MAX_SIDE, WEBP_MAX_SIDE
from dezoom_steps.errors import OutputError

if TYPE_CHECKING:
    from dezoom_steps.canvas import Canvas
    from dezoom_steps.encoders.tiff import TiffOptions
    from dezoom_steps.encoders.tiff_passthrough import Plan
    from dezoom_steps.outmeta import OutputMeta

# The writers (numpy, Pillow, tifffile) are imported when one writes: list_tiles checks the
# output's limits (check_output_feasible) before any download, without them.
BUILTIN = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
           ".iiif": "iiif", ".dzi": "dzi"}  # the last two are folders (encoders/folders.py)
MAX_SIDE = {"jpeg": JPEG_MAX_SIDE, "JPEG": JPEG_MAX_SIDE, "png": PNG_MAX_SIDE,
            "WEBP": WEBP_MAX_SIDE, "GIF": GIF_MAX_SIDE}
MAX_SIDE_HINT = {"jpeg": "JPEG", "WEBP": "WebP"}


@dataclass(frozen=True)
class OutputFormat:
    """The writer for one output file: `name` for the sidecar, `pillow` set for generic formats."""

    name: str
    pillow: str | None = None


def default_memory_budget() -> int:
    """Bytes a whole-image (Pillow) encode may use: half the physical memory, at most 8 GiB."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 4 << 30
    return min(physical // 2, 8 << 30)


def output_format(path: str | os.PathLike[str]) -> OutputFormat:
    """The format for `path`, by its extension; OutputError naming the file when there is none."""
    ext = Path(path).suffix.lower()
    if not ext:
        raise OutputError(f"{path}: no file extension, so no output format (use .png, .jpg or .tif)")
    if ext in BUILTIN:
        return OutputFormat(BUILTIN[ext])
    from dezoom_steps.encoders import pillow_generic

    fmt = pillow_generic.pillow_format(ext)
    if fmt is None:
        raise OutputError(f"{path}: unknown output format {ext!r} (use .png, .jpg, .tif or another "
                          "extension Pillow can write, such as .webp or .bmp)")
    return OutputFormat(fmt.lower(), fmt)


def check_output_feasible(
    path: str | os.PathLike[str], width: int, height: int, *, memory_budget: int | None = None,
) -> None:
    """Raise OutputError if a `width` x `height` image cannot be written to `path` (call before downloading)."""
    fmt = output_format(path)
    key = fmt.pillow or fmt.name
    limit = MAX_SIDE.get(key)
    if limit is not None and max(width, height) > limit:
        label = MAX_SIDE_HINT.get(key, key.upper())
        raise OutputError(f"{path}: {label} cannot hold more than {limit} pixels per side; "
                          f"use .png or .tif (the image is {width}x{height})")
    if fmt.pillow is None:
        return
    from dezoom_steps.encoders import pillow_generic

    reason = pillow_generic.can_write_rgb(fmt.pillow)
    if reason is not None:
        raise OutputError(f"{path}: Pillow cannot write an RGB image as {fmt.pillow}: {reason}")
    budget = default_memory_budget() if memory_budget is None else memory_budget
    need = width * height * pillow_generic.BYTES_PER_PIXEL
    if need > budget:
        raise OutputError(f"{path}: writing a {width}x{height} image as {fmt.pillow} needs the whole image "
                          f"in memory (about {need / 2**30:.1f} GiB, budget {budget / 2**30:.1f} GiB); "
                          "use .png, .jpg or .tif, which are written in strips")


def write_image(canvas: Canvas, out: BinaryIO, fmt: OutputFormat, compression: int = 5, *, threads: int = 2,
                meta: OutputMeta | None = None, tiff: TiffOptions | None = None,
                passthrough: Plan | None = None) -> dict | None:
    """Encode `canvas` into the open, seekable binary file `out` in format `fmt`, with `meta` embedded.

    `tiff` and `passthrough` (server JPEG tiles copied as they are) apply to TIFF only, which
    returns what it did for the sidecar; other formats return None.
    """
    from dezoom_steps.outmeta import OutputMeta

    meta = meta or OutputMeta()
    if fmt.name == "png":
        from dezoom_steps.encoders.png import write_png

        write_png(canvas, out, compression, threads=threads, meta=meta)
    elif fmt.name == "jpeg":
        from dezoom_steps.encoders.jpeg import write_jpeg

        write_jpeg(canvas, out, compression, meta=meta)
    elif fmt.name == "tiff":
        from dezoom_steps.encoders.tiff import write_tiff

        return write_tiff(canvas, out, compression, threads=threads, meta=meta, options=tiff, plan=passthrough)
    else:
        from dezoom_steps.encoders import pillow_generic

        pillow_generic.write_pillow(canvas, out, fmt.pillow or fmt.name.upper(), compression, meta=meta)
