"""Last workflow step: one status line per image, and incomplete images queued for a retry.

Each image of the run ends in one of four states: `complete`, `partial` (written, some tiles
missing), `failed` (a step stopped with an error, recorded in work/{image}/error.json, or a
bulk entry that could not be downloaded at all) or `not run` (interrupted before its turn).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from dezoom_steps.errors import IncompleteRun
from dezoom_steps.jsonio import atomic_write_bytes, read_step_json


def image_row(name: str, sidecar: Path, work: Path) -> dict[str, Any]:
    """The summary row of one image, from its sidecar or its error file."""
    row: dict[str, Any] = {"image": name, "output": None, "state": "not run", "error": None,
                           "missing_tiles": 0, "tiles_total": 0, "missing": [], "width": None, "height": None}
    kept = Path(str(sidecar) + ".partial")  # a partial image's sidecar, set aside for the rerun
    if sidecar.exists() or kept.exists():
        side = read_step_json(sidecar if sidecar.exists() else kept, "output")
        row.update(output=side["output"], state="complete" if side["complete"] else "partial",
                   missing_tiles=len(side["missing_tiles"]), tiles_total=side["tiles_total"],
                   missing=[m["url"] for m in side["missing_tiles"]],
                   width=side["width"], height=side["height"])
        return row
    error = work / name / "error.json"
    if error.exists():
        try:
            row.update(state="failed", error=json.loads(error.read_text())["error"])
        except (ValueError, KeyError, OSError):
            row.update(state="failed", error="unreadable error record")
    return row


def summarize(*, images: list[tuple[str, Path]], summary: Path, work: Path,
              bulk: Path | None = None, strict: bool = True) -> dict[str, Any]:
    """Write results/summary.json for `images` (name, sidecar path) and bulk entries that failed.

    With `strict`, an image that is not complete raises PartialDownload (the job fails, so
    `snakemake` exits non-zero). The fetch reports and sidecar of each partial image are
    removed (the image stays): Snakemake then reruns its fetch, stitch and encode jobs on
    the next run, which fetch only the missing tiles (the others are in the cache).
    """
    rows = [image_row(name, Path(side), Path(work)) for name, side in images]
    if bulk is not None and Path(bulk).exists():
        for entry in read_step_json(bulk, "bulk")["entries"]:
            if entry["error"]:
                rows.append({"image": entry["name"], "output": None, "state": "failed",
                             "error": entry["error"], "missing_tiles": 0, "tiles_total": 0,
                             "missing": [], "width": None, "height": None})
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "partial", "failed", "not run")}
    doc = {"images": len(rows), **counts, "items": rows}
    atomic_write_bytes(summary, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode())
    for (name, side), row in zip(images, rows):
        kept = Path(str(side) + ".partial")
        if row["state"] == "partial" and Path(side).exists():
            shutil.rmtree(Path(work) / name / "fetch", ignore_errors=True)
            os.replace(side, kept)
        elif row["state"] == "complete":
            kept.unlink(missing_ok=True)
    for r in rows:
        what = {"complete": "complete", "not run": "not run",
                "partial": f"PARTIAL, {r['missing_tiles']} of {r['tiles_total']} tiles missing",
                "failed": f"FAILED: {r['error']}"}[r["state"]]
        size = f"{r['width']}x{r['height']}, " if r["width"] else ""
        print(f"{r['output'] or r['image']}: {size}{what}")
    print(f"{counts['complete']} of {len(rows)} images complete"
          + "".join(f", {n} {s}" for s, n in counts.items() if s != "complete" and n))
    bad = len(rows) - counts["complete"]
    if strict and bad:
        raise IncompleteRun(f"{bad} of {len(rows)} images not complete (see {summary}); "
                            "run the same command again to retry what is missing")
    return doc
