"""Step `render`: stitch and encode in one pass, without a canvas file (every format but TIFF).

The PNG, JPEG, IIIF/DZI and Pillow writers read the canvas top to bottom, so the row bands
the stitcher assembles can go straight into the encoder (streamcanvas.StreamCanvas): no
width x height x 3 bytes written to the work folder and read back, decoding overlapped with
compression, one process instead of two. In the workflow TIFF keeps the two steps (stitch,
encode): its writer reads the canvas by tile, out of order, around the server tiles it copies as
they are. The `dezoom` command writes a passthrough TIFF in one pass instead (render_tiff.py).

The stitch report (stitch.json) is written once the last band is in, before the image takes
its final name; with `on_missing="fail"` a tile that turned out undecodable stops the image
there, and nothing is published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dezoom_steps import encoders
from dezoom_steps.errors import OutputError
from dezoom_steps.fill import require_all
from dezoom_steps.jsonio import write_step_json
from dezoom_steps.outmeta import icc_to_json
from dezoom_steps.steps.encode import encode_canvas, public_url
from dezoom_steps.steps.stitch import Assembly, TileHook
from dezoom_steps.streamcanvas import StreamCanvas

STITCHED_SEPARATELY = {"tiff"}  # formats whose writer needs a canvas file


def streams(output: str | Path) -> bool:
    """True when `output`'s format is written by `render` (one pass), False for stitch + encode (TIFF)."""
    return encoders.output_format(output).name not in STITCHED_SEPARATELY


def render(
    *, tiles_json: Path, cache_dir: Path, output: Path, report: Path, sidecar: Path | None = None,
    compression: int = 5, overwrite: bool = False, on_missing: str = "blank", cached: bool = True,
    fill: Path | None = None, decode: TileHook | None = None, threads: int = 2,
    iiif_base_url: str | None = None,
) -> dict[str, Any]:
    """Assemble the tiles of tiles.json straight into `output`; write stitch.json and the sidecar.

    The options are those of `stitch` (fill, decode) and `encode` (compression, overwrite,
    on_missing, iiif_base_url); returns the sidecar.
    """
    if not streams(output):
        raise OutputError(f"{output}: a TIFF is written by the stitch and encode steps, not render")
    with Assembly(tiles_json, cache_dir, decode=decode, threads=threads, fill=fill) as job:
        channels = job.prepare()
        # What the encoder embeds is known before the first band: size, channels, ICC profile.
        preliminary = {"width": job.width, "height": job.height, "channels": channels,
                       "icc": icc_to_json(job.first_icc()), "missing": [], "size_mismatches": []}
        extents = [(y0, rows) for y0, rows, _ in job.bands]
        by_start = {y0: band for y0, _, band in job.bands}

        def finish() -> dict[str, Any]:
            stitched = write_step_json(report, "stitch", job.report())
            if on_missing == "fail":  # a tile that arrived but does not decode: still no image
                require_all(public_url(job.doc["input_url"]), stitched["missing"], len(job.doc["tiles"]), cached)
            return stitched

        with StreamCanvas(job.width, job.height, channels, extents,
                          lambda y0, strip: job.fill_band(y0, strip, by_start[y0])) as canvas:
            return encode_canvas(
                tiles=job.doc, stitched=preliminary, canvas=canvas, output=output, sidecar=sidecar,
                compression=compression, overwrite=overwrite, on_missing=on_missing,
                iiif_base_url=iiif_base_url, finish=finish)
