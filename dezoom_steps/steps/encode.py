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
from typing import TYPE_CHECKING, Any, Callable

import numpy
import PIL
import tifffile

from dezoom_steps import __version__, encoders, outmeta
from dezoom_steps.canvas import open_canvas
from dezoom_steps.encoders.tiff import tiff_write_args
from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.fill import require_all
from dezoom_steps.jsonio import read_step_json, write_step_json
from dezoom_steps.tempfiles import temp_beside
from dezoom_steps.urls import file_url_path, is_file_url

if TYPE_CHECKING:
    from dezoom_steps.encoders.tiff_passthrough import Plan

DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
FOLDER_FORMATS = ("iiif", "dzi")  # = encoders.folders.FORMATS, whose writers are imported when used


def encode(
    *, tiles_json: Path, stitch_json: Path, canvas: Path, output: Path,
    sidecar: Path | None = None, compression: int = 5, overwrite: bool = False,
    on_missing: str = "blank", cached: bool = True, cache_dir: Path | None = None,
    tiff_compression: str = "jpeg", tiff_pyramid: bool = True, iiif_base_url: str | None = None,
    tiles_doc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Encode `canvas` into `output` (format by extension) and write the sidecar; returns the sidecar.

    An existing `output` is refused unless `overwrite` (then it is replaced atomically, only
    once the new image is complete). With `on_missing="fail"`, a missing tile means no image
    (TilesMissing, exit 6; `cached` says whether the tiles that arrived are kept for a rerun).
    TIFF: `tiff_compression` (jpeg, deflate, zstd, none), pyramid levels unless not
    `tiff_pyramid`; with `cache_dir` (the tile cache) server JPEG tiles that fit are
    copied into the TIFF as they are. IIIF folders: `iiif_base_url` is where the folder will be
    published (its info.json `id` is that URL plus the folder's name). `tiles_doc`: tiles.json
    already read (in-process callers), else it is read from `tiles_json`.
    """
    tiles = tiles_doc if tiles_doc is not None else read_step_json(tiles_json, "tiles")
    stitched = read_step_json(stitch_json, "stitch")
    if on_missing == "fail":  # --on-missing fail: no image at all when a tile is missing
        require_all(public_url(tiles["input_url"]), stitched["missing"], len(tiles["tiles"]), cached)
    try:
        cv = open_canvas(canvas)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise InputError(f"{canvas}: cannot read the canvas: {exc}") from None
    with cv:
        if (cv.width, cv.height) != (stitched["width"], stitched["height"]):
            raise InputError(f"{canvas}: canvas is {cv.width}x{cv.height}, stitch.json says "
                             f"{stitched['width']}x{stitched['height']}")
        return encode_canvas(
            tiles=tiles, stitched=stitched, canvas=cv, output=output, sidecar=sidecar, compression=compression,
            overwrite=overwrite, on_missing=on_missing, cache_dir=cache_dir, tiff_compression=tiff_compression,
            tiff_pyramid=tiff_pyramid, iiif_base_url=iiif_base_url)


def encode_canvas(
    *, tiles: dict[str, Any], stitched: dict[str, Any], canvas: Any, output: Path,
    sidecar: Path | None = None, compression: int = 5, overwrite: bool = False, on_missing: str = "blank",
    cache_dir: Path | None = None, tiff_compression: str = "jpeg", tiff_pyramid: bool = True,
    iiif_base_url: str | None = None, finish: Callable[[], dict[str, Any]] | None = None,
    plan: Plan | None = None,
) -> dict[str, Any]:
    """Encode an open canvas (a canvas file, or a StreamCanvas read once) into `output`; write the sidecar.

    `stitched` is the stitch report (width, height, channels, ICC profile). `finish()`, when
    given, runs once the image is written but before it takes its final name, and returns the
    final stitch report (a streamed canvas knows its missing tiles only then); if it raises,
    nothing is published. `plan`: the TIFF passthrough plan already built in this process
    (steps/render_tiff.py), instead of the one `stitched` records.
    """
    output = Path(output)
    if not isinstance(compression, int) or not 0 <= compression <= 100:
        raise InputError(f"compression must be a whole number from 0 to 100, got {compression!r}")
    fmt = encoders.output_format(output)
    encoders.check_output_feasible(output, stitched["width"], stitched["height"])
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: file exists; not overwritten")
    meta = outmeta.from_step_docs(tiles, stitched, public_url(tiles["input_url"]))
    extra = tiff_write_args(fmt.name, tiles, cache_dir, tiff_compression, tiff_pyramid,
                            recorded=stitched.get("passthrough"), plan=plan)
    if fmt.name == "iiif":
        from dezoom_steps.encoders import folders


        extra = {**extra, "iiif_base_url": folders.check_base_url(iiif_base_url)}
    written: dict[str, Any] = {}
    final: list[dict[str, Any]] = []

    def before_publish() -> None:
        final.append(finish() if finish is not None else stitched)

    digest, size = _write_image(canvas, output, fmt, compression, overwrite, meta,
                                extra=extra, written=written, before_publish=before_publish)
    stitched = final[0]
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
    body["on_missing"] = on_missing
    if written:  # TIFF: compression used, levels, tiles copied as they are vs encoded
        body["tiff"] = written
    if "region" in tiles["selection"]:  # --region: the image is this rectangle of the level
        body["region"] = tiles["selection"]["region"]
    if "filled" in stitched:  # --on-missing fill: holes repaired from a lower level
        body["filled_regions"] = stitched["filled"]
    target = Path(sidecar) if sidecar is not None else output.with_name(output.name + ".json")
    try:
        return write_step_json(target, "output", body)
    except OSError as exc:
        raise _output_error(target, exc) from None


def _write_image(cv: Any, output: Path, fmt: encoders.OutputFormat, compression: int,
                 overwrite: bool = False, meta: outmeta.OutputMeta | None = None,
                 extra: dict[str, Any] | None = None, written: dict[str, Any] | None = None,
                 before_publish: Callable[[], None] | None = None) -> tuple[str, int]:
    """Encode into a temporary file beside `output`, hash it, rename it; returns (sha256, bytes).

    `extra`: more write_image keywords (TIFF options); what write_image reports goes into `written`.
    `before_publish()` runs after writing, before the rename; if it raises nothing is published.
    """
    if fmt.name in FOLDER_FORMATS:  # .iiif / .dzi: a tree built beside, then renamed into place
        from dezoom_steps.encoders import folders

        try:
            return folders.write_folder_output(cv, output, fmt.name, compression, meta=meta,
                                               overwrite=overwrite, before_publish=before_publish,
                                               **(extra or {}))
        except OSError as exc:
            raise _output_error(output, exc) from None
    tmp = temp_beside(output)
    try:
        # A named file object (tifffile wants its name) with a 1 MB buffer: a passthrough TIFF is
        # written as thousands of tiles of a few KB, one system call each with the default buffer.
        with open(tmp, "wb", buffering=1 << 20) as f:
            report = encoders.write_image(cv, f, fmt, compression, meta=meta, **(extra or {}))
        if written is not None and report:
            written.update(report)
        digest, size = sha256_of(tmp)
        if before_publish is not None:
            before_publish()
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
