"""Step script: write the output image and its provenance sidecar from the canvas."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.encoders.tiff import COMPRESSIONS  # noqa: E402
from dezoom_steps.steps.encode import encode  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--tiles", required=True, type=Path, help="tiles.json")
p.add_argument("--stitch", required=True, type=Path, help="stitch.json")
p.add_argument("--canvas", required=True, type=Path, help="canvas.tif")
p.add_argument("--output", required=True, type=Path, help="image to write (format by extension)")
p.add_argument("--sidecar", type=Path, default=None, help="provenance JSON (default OUTPUT.json)")
p.add_argument("--compression", type=int, default=5, help="0-100, as dezoomify-rs (default 5)")
p.add_argument("--on-missing", choices=("blank", "fail", "fill"), default="blank",
               help="blank: write the image with missing tiles black; fail: write nothing; fill: as blank "
                    "(the holes were filled by stitch)")
p.add_argument("--cache", type=Path, help="tile cache folder: server JPEG tiles that fit are copied into a TIFF")
p.add_argument("--tiff-compression", choices=COMPRESSIONS, default="jpeg", help="TIFF tile compression (jpeg)")
p.add_argument("--tiff-pyramid", action=argparse.BooleanOptionalAction, default=True,
               help="TIFF: add the lower levels as SubIFDs (default: yes)")
p.add_argument("--iiif-base-url", help=".iiif: URL of the folder the output will be published in (info.json id)")
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()
sys.exit(run_step("encode", lambda: encode(
    tiles_json=a.tiles, stitch_json=a.stitch, canvas=a.canvas, output=a.output,
    sidecar=a.sidecar, compression=a.compression, on_missing=a.on_missing,
    cache_dir=a.cache, tiff_compression=a.tiff_compression, tiff_pyramid=a.tiff_pyramid,
    iiif_base_url=a.iiif_base_url), error_file=a.error_file))
