"""Step script: stitch the cached tiles straight into the output image (every format but TIFF)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.render import render  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--tiles", required=True, type=Path, help="tiles.json")
p.add_argument("--cache", required=True, type=Path, help="tile cache folder")
p.add_argument("--report", required=True, type=Path, help="stitch.json to write")
p.add_argument("--output", required=True, type=Path, help="image to write (format by extension)")
p.add_argument("--sidecar", type=Path, default=None, help="provenance JSON (default OUTPUT.json)")
p.add_argument("--compression", type=int, default=5, help="0-100, as dezoomify-rs (default 5)")
p.add_argument("--on-missing", choices=("blank", "fail", "fill"), default="blank",
               help="blank: missing tiles black; fail: no image when one is missing; fill: holes filled from --fill")
p.add_argument("--fill", type=Path, help="fill.json of the fill_tiles step (--on-missing fill)")
p.add_argument("--threads", type=int, default=2, help="decoding threads (default 2)")
p.add_argument("--iiif-base-url", help=".iiif: URL of the folder the output will be published in (info.json id)")
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()
sys.exit(run_step("render", lambda: render(
    tiles_json=a.tiles, cache_dir=a.cache, output=a.output, report=a.report, sidecar=a.sidecar,
    compression=a.compression, on_missing=a.on_missing, fill=a.fill, threads=a.threads,
    iiif_base_url=a.iiif_base_url), error_file=a.error_file))
