"""Step `encode`: write the stitched canvas as the output image, then its provenance sidecar.

The image is written to a temporary file in the output's folder and renamed into place, so a
final name never holds a half-written file; an existing output is never overwritten. Missing
tiles do not make this step fail: the sidecar says `complete: false` and the caller chooses
the exit code.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import numpy
import PIL
import tifffile

from dezoom_steps import __version__, encoders, outmeta
from dezoom_steps.canvas import open_canvas
from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.jsonio import read_step_json, write_step_json
from dezoom_steps.tempfiles import temp_beside
from dezoom_steps.urls import file_url_path, is_file_url

DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def encode(
    *, tiles_json: Path, stitch_json: Path, canvas: Path, output: Path,
    sidecar: Path | None = None, compression: int = 5, overwrite: bool = False,
) -> dict[str, Any]:
    """Encode `canvas` into `output` (format by extension) and write the sidecar; returns the sidecar.

    An existing `output` is refused unless `overwrite` (then it is replaced atomically, only
    once the new image is complete).
    """
    output = Path(output)
    if not isinstance(compression, int) or not 0 <= compression <= 100:
        raise InputError(f"compression must be a whole number from 0 to 100, got {compression!r}")
    tiles = read_step_json(tiles_json, "tiles")
    stitched = read_step_json(stitch_json, "stitch")
    fmt = encoders.output_format(output)
    encoders.check_output_feasible(output, stitched["width"], stitched["height"])
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: file exists; not overwritten")
    meta = outmeta.from_step_docs(tiles, stitched, public_url(tiles["input_url"]))
    digest, size = _write_image(Path(canvas), output, fmt, compression, stitched, overwrite, meta)
    missing = [{"index": m["index"], "url": public_url(m["url"], tiles["input_url"])} for m in stitched["missing"]]
    body = {
        "output": output.name, "format": fmt.name, "source": public_url(tiles["input_url"]),
        "dezoomer": tiles["dezoomer"], "title": tiles["title"],
        "level_index": tiles["selection"]["level_index"],
        "width": stitched["width"], "height": stitched["height"],
        "complete": not missing, "missing_tiles": missing, "tiles_total": len(tiles["tiles"]),
        "compression": compression, "sha256": digest, "bytes": size, "tool_versions": tool_versions(),
        "channels": stitched.get("channels", 3), "icc_profile": bool(stitched.get("icc")),
        "size_mismatches": stitched.get("size_mismatches", []),
    }
    target = Path(sidecar) if sidecar is not None else output.with_name(output.name + ".json")
    try:
        return write_step_json(target, "output", body)
    except OSError as exc:
        raise _output_error(target, exc) from None


def _write_image(canvas: Path, output: Path, fmt: encoders.OutputFormat, compression: int,
                 stitched: dict[str, Any], overwrite: bool = False,
                 meta: outmeta.OutputMeta | None = None) -> tuple[str, int]:
    """Encode into a temporary file beside `output`, hash it, rename it; returns (sha256, bytes)."""
    try:
        cv = open_canvas(canvas)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise InputError(f"{canvas}: cannot read the canvas: {exc}") from None
    with cv:
        if (cv.width, cv.height) != (stitched["width"], stitched["height"]):
            raise InputError(f"{canvas}: canvas is {cv.width}x{cv.height}, stitch.json says "
                             f"{stitched['width']}x{stitched['height']}")
        tmp = temp_beside(output)
        try:
            with open(tmp, "wb") as f:  # a named file object: tifffile wants its name
                encoders.write_image(cv, f, fmt, compression, meta=meta)
            digest, size = sha256_of(tmp)
            if output.exists() and not overwrite:  # appeared while encoding: still never overwritten
                raise OutputError(f"{output}: file exists; not overwritten")
            os.replace(tmp, output)
        except OSError as exc:
            raise _output_error(output, exc) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return digest, size


def _output_error(path: Path, exc: OSError) -> OutputError:
    """The OutputError for an OSError met while writing `path` (disk full gets its own wording)."""
    if exc.errno in DISK_FULL:
        return OutputError(f"{path}: disk full, the image could not be written ({exc.strerror})")
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}")


def sha256_of(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of the file at `path`."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def public_url(url: str, input_url: str | None = None) -> str:
    """`url` without local paths: a file: URL becomes a path relative to the input's folder, or its file name."""
    if not is_file_url(url):
        return url
    path = file_url_path(url)
    if input_url is not None and is_file_url(input_url):
        with contextlib.suppress(ValueError):
            return path.relative_to(file_url_path(input_url).parent).as_posix()
    return path.name


def tool_versions() -> dict[str, str]:
    """Versions of the software that made the output."""
    versions = {"dezoom-steps": __version__, "python": platform.python_version(),
                "Pillow": PIL.__version__, "numpy": numpy.__version__, "tifffile": tifffile.__version__}
    for name in ("isal", "imagecodecs"):
        with contextlib.suppress(ImportError, AttributeError):
            versions[name] = str(__import__(name).__version__)
    return versions
