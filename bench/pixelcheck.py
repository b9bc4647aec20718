"""Checking an output image against the rig's lossless master, so that no figure is ever
reported for a broken image.

The master is `src/<size>.v` (libvips' native format: a 64-byte header, then the pixels
uncompressed, so it maps straight into numpy). The output, whatever its format (our TIFF with
JPEG tiles, GDAL's tiled TIFF, PNG), is first converted by `vips copy` to the same format in
a temporary folder (untimed); both are then compared in 32-row strips, so even the 600 MP
image is checked with little memory: mean |diff| over every pixel and channel, and the
worst 32 px cell outside the text label (a missing or misplaced tile shows there).
A file whose bytes were already checked (same sha256) is not checked again.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VIPS_MAGIC_INTEL = 0x08F2A6B6  # little-endian .v file
VIPS_HEADER_BYTES = 64
BLOCK = 32
# Tiles are JPEG Q85 (static DZI) or Q90 (iipsrv): JPEG noise gives a mean of ~0.6 and cells
# of at most ~3 outside the label; a lost, shifted or swapped tile gives far more.
MAX_MEAN_ABS_DIFF = 1.5
MAX_CELL_DIFF = 6.0


def vips_pixels(path: Path) -> np.ndarray:
    """The pixels of a libvips .v file (8-bit, uncoded) as a read-only (H, W, bands) memory map."""
    with open(path, "rb") as f:
        head = f.read(VIPS_HEADER_BYTES)
    magic, width, height, bands, _bbits, band_format, coding = struct.unpack("<7i", head[:28])
    if magic & 0xFFFFFFFF != VIPS_MAGIC_INTEL or band_format != 0 or coding != 0:
        raise ValueError(f"{path.name}: not a little-endian 8-bit uncoded libvips image")
    return np.memmap(path, dtype=np.uint8, mode="r", offset=VIPS_HEADER_BYTES, shape=(height, width, bands))


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def compare_strips(got: np.ndarray, ref: np.ndarray, label: tuple[int, int, int, int]) -> dict[str, Any]:
    """Mean |diff| and the worst BLOCK px cell outside `label` (x, y, w, h) of two equal-size images."""
    height, width = ref.shape[:2]
    starts = np.arange(0, width, BLOCK)
    widths = np.diff(np.append(starts, width))
    bx, by, bw, bh = label
    total, worst, worst_at = 0.0, 0.0, (0, 0)
    for y in range(0, height, BLOCK):
        d = np.abs(got[y:y + BLOCK, :, :3].astype(np.int16) - ref[y:y + BLOCK, :, :3].astype(np.int16)).sum(axis=2)
        total += float(d.sum())
        y0, y1 = max(0, by - y), min(d.shape[0], by + bh - y)
        if y0 < y1:
            d[y0:y1, max(0, bx):max(0, bx + bw)] = 0
        cells = np.add.reduceat(d.sum(axis=0), starts) / (3.0 * d.shape[0] * widths)
        i = int(cells.argmax())
        if cells[i] > worst:
            worst, worst_at = float(cells[i]), (int(starts[i]), y)
    return {"mean_abs_diff": round(total / (height * width * 3), 3), "worst_cell_diff": round(worst, 2),
            "worst_cell_at": list(worst_at)}


@dataclass
class Checker:
    """Compares outputs with the master of one rig image; remembers files already checked."""

    data_dir: Path
    size_name: str
    env: dict[str, str]
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    def label_box(self, margin: int = 8) -> tuple[int, int, int, int]:
        """The text label's box (from www/ref/<size>.json), grown by `margin`."""
        b = json.loads((self.data_dir / "www" / "ref" / f"{self.size_name}.json").read_text())["label_bbox"]
        return (b["x"] - margin, b["y"] - margin, b["w"] + 2 * margin, b["h"] + 2 * margin)

    def check(self, output: Path, region: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        """Size, mean |diff| and worst cell of `output` against the master (or the master's
        `region` x, y, w, h, for an output of that region only), with `ok`."""
        key = f"{sha256_of(output)} {region}"
        if key in self.seen:
            return {**self.seen[key], "same_bytes_as_a_checked_output": True}
        ref = vips_pixels(self.data_dir / "src" / f"{self.size_name}.v")
        bx, by, bw, bh = self.label_box()
        if region is not None:
            x, y, w, h = region
            ref, (bx, by) = ref[y:y + h, x:x + w], (bx - x, by - y)
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            copy = Path(tmp, "out.v")
            proc = subprocess.run(["vips", "copy", str(output), str(copy)], env=self.env, capture_output=True,
                                  text=True, timeout=1800)
            if proc.returncode != 0:
                result = {"ok": False, "error": f"vips copy failed: {proc.stderr.strip()[-300:]}"}
            else:
                got = vips_pixels(copy)
                if got.shape[:2] != ref.shape[:2] or got.shape[2] < 3:
                    result = {"ok": False, "size": [got.shape[1], got.shape[0]], "bands": got.shape[2],
                              "expected_size": [ref.shape[1], ref.shape[0]]}
                else:
                    result = compare_strips(got, ref, (bx, by, bw, bh))
                    result["ok"] = bool(result["mean_abs_diff"] <= MAX_MEAN_ABS_DIFF
                                        and result["worst_cell_diff"] <= MAX_CELL_DIFF)
                del got
        result["limits"] = {"mean_abs_diff": MAX_MEAN_ABS_DIFF, "worst_cell_diff": MAX_CELL_DIFF}
        self.seen[key] = result
        return result
