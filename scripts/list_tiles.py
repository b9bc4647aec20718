"""Step script: choose a level and list its tiles, resolve.json -> tiles.json."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.list_tiles import DEFAULT_PIXEL_BUDGET, DEFAULT_TILE_BUDGET, Selection, list_tiles  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("resolve_json", type=Path)
p.add_argument("-o", "--output", type=Path, required=True, help="tiles.json to write")
p.add_argument("--image", required=True, help="image id")
p.add_argument("--output-file", type=Path, help="final output path, to check format limits early")
p.add_argument("--largest", action="store_true")
p.add_argument("--max-width", type=int)
p.add_argument("--max-height", type=int)
p.add_argument("--zoom-level", type=int)
p.add_argument("--image-index", type=int)
p.add_argument("--pixel-budget", type=int, default=DEFAULT_PIXEL_BUDGET)
p.add_argument("--tile-budget", type=int, default=DEFAULT_TILE_BUDGET)
p.add_argument("--region", help="x,y,w,h in pixels, or fractions of the level (e.g. 0.25,0.25,0.5,0.5)")
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()
sel = Selection(largest=a.largest, max_width=a.max_width, max_height=a.max_height,
                zoom_level=a.zoom_level, image_index=a.image_index)
sys.exit(run_step("list_tiles", lambda: list_tiles(
    resolve_json=a.resolve_json, output=a.output, image=a.image, selection=sel,
    pixel_budget=a.pixel_budget, output_file=a.output_file, region=a.region,
    tile_budget=a.tile_budget), error_file=a.error_file))
