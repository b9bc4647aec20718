"""Stitch and encode a JPEG-passthrough TIFF in one pass, without a canvas file (the `dezoom` command).

The Snakefile runs `stitch` (which writes a width x height canvas file) and `encode` (which
reads it back) as two processes. When the TIFF copies the server's JPEG tiles as they are
(encoders/tiff_passthrough.py), the writer only ever reads the cells it encodes itself: the
edge tiles, and odd or missing ones. In one process those cells need no file: `CellCanvas`
decodes the tiles of one row band when the writer first asks for a cell in it, and keeps that
band only. The files the steps would exchange (tiles.json, the plan) are passed as objects.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dezoom_steps.encoders.tiff_passthrough import Plan
from dezoom_steps.fill import require_all
from dezoom_steps.jsonio import schema_id, write_step_json
from dezoom_steps.outmeta import icc_to_json
from dezoom_steps.steps.encode import encode_canvas, public_url
from dezoom_steps.steps.stitch import Assembly, TileHook, band_columns


class CellCanvas:
    """The canvas of a passthrough TIFF held in memory, band by band (`read_region` only).

    The passthrough writer reads the cells of its tile grid that it encodes, once each, a few
    rows ahead; a band of the stitch is one row of that grid (no overlap, cells at multiples of
    the tile size), so a cell never straddles two bands. A band is decoded on its first read
    into a full-width buffer (of which only the columns of its tiles are cleared and written),
    and the buffer is reused once the band's last expected read is done: memory holds the
    bands the writer's look-ahead touches. Safe for the writer's threads (a lock a band).
    """

    def __init__(self, job: Assembly, plan: Plan):
        self.width, self.height, self.channels = job.width, job.height, job.channels
        self._job = job
        self._bands = [(y0, rows, band) for y0, rows, band in job.bands if rows > 0]
        self._starts = [y0 for y0, _, _ in self._bands]
        # reads the writer makes in a band: the cells of its grid row that are not copied
        self._reads_left = [plan.cols - sum((c, y0 // plan.tile_h) in plan.tiles for c in range(plan.cols))
                            if y0 % plan.tile_h == 0 else -1 for y0, _, _ in self._bands]
        self._pixels: dict[int, np.ndarray] = {}  # band -> its rows, full width
        self._columns = [band_columns(band, self.width) for _, _, band in self._bands]  # [x0, x1) a band wrote
        self._free: list[np.ndarray] = []  # buffers of bands done with
        self._band_rows = max((rows for _, rows, _ in self._bands), default=0)
        self._free_lock = threading.Lock()
        self._decoded = [False] * len(self._bands)
        self._locks = [threading.Lock() for _ in self._bands]

    def _decode(self, i: int) -> None:
        """Decode band `i` (missing tiles stay black, as in the stitch step)."""
        y0, rows, band = self._bands[i]
        with self._free_lock:
            buffer = self._free.pop() if self._free else None
        if buffer is None:  # pages are mapped as they are first written: a narrow band costs little
            buffer = np.zeros((self._band_rows, self.width, self.channels), dtype=np.uint8)
        strip = buffer[:rows]
        x0, x1 = self._columns[i]
        strip[:, x0:x1].fill(0)  # the other columns hold an earlier band: never read (read_region)
        self._job.fill_band(y0, strip, band)
        self._pixels[i], self._decoded[i] = strip, True

    def read_region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels (h, w, channels) of the canvas rectangle at (x, y): black where no decoded tile is."""
        out = np.zeros((h, w, self.channels), dtype=np.uint8)
        i = bisect.bisect_right(self._starts, y) - 1
        if i < 0 or y >= self._bands[i][0] + self._bands[i][1]:
            return out  # no decoded tile in these rows: every cell there was copied or is empty
        with self._locks[i]:
            if not self._decoded[i]:
                self._decode(i)
            strip = self._pixels.get(i)
            if strip is None:  # only the cells the plan does not copy are read, once each
                raise RuntimeError(f"canvas rows {y}..{y + h - 1} read after the writer's last expected read")
            dy = y - self._bands[i][0]
            x0, x1 = self._columns[i]
            lo, hi = max(x, x0), min(x + w, x1)
            if lo < hi:  # outside the band's columns the canvas is black
                part = strip[dy:dy + h, lo:hi]
                out[:part.shape[0], lo - x:hi - x] = part
            self._reads_left[i] -= 1
            if self._reads_left[i] == 0:  # the writer is done with this band: its buffer serves another
                del self._pixels[i]
                with self._free_lock:
                    self._free.append(strip.base if strip.base is not None else strip)
        return out

    def finish(self) -> None:
        """Decode the bands no cell read asked for, so that the stitch report counts their tiles."""
        for i, lock in enumerate(self._locks):
            with lock:
                if not self._decoded[i]:
                    self._decode(i)
                    strip = self._pixels.pop(i)
                    self._free.append(strip.base if strip.base is not None else strip)


def render_tiff(
    *, tiles: dict[str, Any], cache_dir: Path, plan: Plan, output: Path, report: Path | None = None,
    sidecar: Path | None = None, compression: int = 5, overwrite: bool = False, on_missing: str = "blank",
    cached: bool = True, fill: Path | None = None, decode: TileHook | None = None, threads: int = 2,
    tiff_pyramid: bool = True,
) -> dict[str, Any] | None:
    """Write the passthrough TIFF `output` of tiles.json `tiles` with `plan`; returns the sidecar.

    The options are those of `stitch` and `encode`; stitch.json is written to `report` when given.
    None, with nothing written, when the canvas would not be RGB (the plan cannot apply): the
    caller then runs stitch and encode.
    """
    with Assembly(Path(), cache_dir, decode=decode, threads=threads, skip=plan.indices, fill=fill,
                  tiles_doc=tiles) as job:
        if job.prepare() != 3:
            return None
        preliminary = {"width": job.width, "height": job.height, "channels": 3,
                       "icc": icc_to_json(job.first_icc()), "missing": [], "size_mismatches": []}
        cells = CellCanvas(job, plan)

        def finish() -> dict[str, Any]:
            cells.finish()
            body = {**job.report(), "passthrough": plan.to_json()}
            stitched = (write_step_json(report, "stitch", body) if report is not None
                        else {"schema": schema_id("stitch"), **body})
            if on_missing == "fail":  # a tile that arrived but does not decode: still no image
                require_all(public_url(tiles["input_url"]), stitched["missing"], len(tiles["tiles"]), cached)
            return stitched

        return encode_canvas(
            tiles=tiles, stitched=preliminary, canvas=cells, output=output, sidecar=sidecar,
            compression=compression, overwrite=overwrite, on_missing=on_missing, cache_dir=cache_dir,
            tiff_compression="jpeg", tiff_pyramid=tiff_pyramid, finish=finish, plan=plan)
