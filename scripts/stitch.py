"""Step script: assemble the canvas from cached tiles, tiles.json -> canvas.tif + stitch.json."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.encoders.tiff import COMPRESSIONS  # noqa: E402
from dezoom_steps.encoders.tiff_passthrough import stitch_plan  # noqa: E402
from dezoom_steps.steps.stitch import stitch  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--tiles", required=True, type=Path, help="tiles.json")
p.add_argument("--cache", required=True, type=Path, help="tile cache folder")
p.add_argument("--canvas", required=True, type=Path, help="canvas.tif to write")
p.add_argument("--report", required=True, type=Path, help="stitch.json to write")
p.add_argument("--threads", type=int, default=2, help="decoding threads (default 2)")
p.add_argument("--fill", type=Path, help="fill.json of the fill_tiles step (--on-missing fill)")
p.add_argument("--output", type=Path, help="the output image the canvas is for: for a .tif with JPEG "
               "compression, server tiles copied into it as they are are not decoded here")
p.add_argument("--tiff-compression", choices=COMPRESSIONS, default="jpeg", help="TIFF tile compression (jpeg)")
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()


def main() -> dict:
    """Plan the TIFF passthrough (if any), then stitch."""
    plan = stitch_plan(a.tiles, a.cache, a.output, a.tiff_compression)
    return stitch(tiles_json=a.tiles, cache_dir=a.cache, canvas=a.canvas, report=a.report, threads=a.threads,
                  fill=a.fill, passthrough=plan.to_json() if plan is not None else None)


sys.exit(run_step("stitch", main, error_file=a.error_file))
