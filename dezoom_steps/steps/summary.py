"""Last workflow step: one status line per image, and partial images queued for a retry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dezoom_steps.errors import PartialDownload
from dezoom_steps.jsonio import atomic_write_bytes, read_step_json


def summarize(*, sidecars: list[Path], summary: Path, work: Path) -> dict[str, Any]:
    """Write results/summary.json from the output sidecars; raise PartialDownload if any is incomplete.

    For each incomplete image, the fetch reports and the output sidecar are removed (the image
    and this summary stay): Snakemake then reruns that image's fetch, stitch and encode jobs
    on the next run, which fetch only the missing tiles (the others are in the cache).
    """
    rows = []
    for path in sidecars:
        side = read_step_json(path, "output")
        image = Path(path).name.rsplit(".", 2)[0]
        rows.append({"image": image, "output": side["output"], "complete": side["complete"],
                     "missing_tiles": len(side["missing_tiles"]), "tiles_total": side["tiles_total"],
                     "missing": [m["url"] for m in side["missing_tiles"]],
                     "width": side["width"], "height": side["height"]})
    doc = {"images": len(rows), "complete": sum(r["complete"] for r in rows), "items": rows}
    atomic_write_bytes(summary, (json.dumps(doc, indent=1) + "\n").encode())
    partial = [r for r in rows if not r["complete"]]
    for path, r in zip(sidecars, rows):
        if not r["complete"]:
            shutil.rmtree(Path(work) / r["image"] / "fetch", ignore_errors=True)
            Path(path).unlink(missing_ok=True)
    for r in rows:
        state = "complete" if r["complete"] else f"PARTIAL, {r['missing_tiles']} of {r['tiles_total']} tiles missing"
        print(f"{r['output']}: {r['width']}x{r['height']}, {state}")
    if partial:
        missing = sum(r["missing_tiles"] for r in partial)
        total = sum(r["tiles_total"] for r in partial)
        raise PartialDownload(", ".join(r["output"] for r in partial), missing, total)
    return doc
