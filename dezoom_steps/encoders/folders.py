"""Outputs that are folders: `.iiif` (IIIF level-0 tile tree) and `.dzi` (DeepZoom descriptor + tiles).

The tree is built in a temporary folder beside the output and renamed into place only when
complete (the `.dzi` file last), so a final name never holds a half-written tree. The output's
checksum is `tiletree.tree_digest` over everything the output consists of.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders import dzi, iiif_folder
from dezoom_steps.encoders.tiletree import publish, tile_codec, tree_digest
from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.outmeta import OutputMeta
from dezoom_steps.tempfiles import temp_tree_beside

FORMATS = {"iiif", "dzi"}  # OutputFormat names written by this module


def check_base_url(url: str | None) -> str | None:
    """The `--iiif-base-url` value if usable (an http or https URL, no query or fragment), else InputError."""
    if not url:
        return None
    parts_ = urlsplit(url)
    if parts_.scheme not in ("http", "https") or not parts_.netloc or parts_.query or parts_.fragment:
        raise InputError(f"--iiif-base-url {url!r}: expected an http(s) URL of the folder that will hold "
                         "the .iiif output, without query or fragment (e.g. https://example.org/iiif)")
    return url


def parts(output: Path, fmt: str) -> list[str]:
    """The names (beside each other in output's folder) an output consists of, the main one last."""
    return dzi.entries(output.name) if fmt == "dzi" else [output.name]


def existing_part(output: Path, fmt: str) -> Path | None:
    """The first existing part of the output (a `.dzi` counts as existing when its `_files` does)."""
    for name in parts(output, fmt):
        if os.path.lexists(output.parent / name):
            return output.parent / name
    return None


def write_folder_output(canvas: Canvas, output: Path, fmt: str, compression: int = 5, *,
                        meta: OutputMeta | None = None, overwrite: bool = False, threads: int = 2,
                        iiif_base_url: str | None = None,
                        before_publish: Callable[[], None] | None = None) -> tuple[str, int]:
    """Write `canvas` as the folder output `output` (format `fmt`: iiif or dzi); returns (sha256, bytes).

    Raises OutputError (existing output without `overwrite`, folder not writable) and OSError
    (disk full...) for the caller to word; the temporary tree is removed on any failure.
    """
    taken = existing_part(output, fmt)
    if taken is not None and not overwrite:  # checked again when publishing
        raise OutputError(f"{taken}: exists; not overwritten")
    codec = tile_codec(getattr(canvas, "channels", 3), compression, meta)
    entries = parts(output, fmt)
    tmp = temp_tree_beside(output)
    try:
        if fmt == "iiif":
            root = tmp / output.name
            root.mkdir()
            iiif_folder.write_iiif(canvas, root, output.name, codec, title=meta.title if meta else None,
                                   base_url=iiif_base_url, threads=threads)
        elif fmt == "dzi":
            dzi.write_dzi(canvas, tmp, output.name, codec, threads=threads)
        else:
            raise ValueError(f"not a folder format: {fmt}")
        digest, size = tree_digest(tmp, entries)
        if before_publish is not None:  # the caller's last check: raising publishes nothing
            before_publish()
        publish(tmp, entries, output.parent, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return digest, size
