"""Step script: write the output image and its provenance sidecar from the canvas."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.encode import encode  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--tiles", required=True, type=Path, help="tiles.json")
p.add_argument("--stitch", required=True, type=Path, help="stitch.json")
p.add_argument("--canvas", required=True, type=Path, help="canvas.tif")
p.add_argument("--output", required=True, type=Path, help="image to write (format by extension)")
p.add_argument("--sidecar", type=Path, default=None, help="provenance JSON (default OUTPUT.json)")
p.add_argument("--compression", type=int, default=5, help="0-100, as dezoomify-rs (default 5)")
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()
sys.exit(run_step("encode", lambda: encode(
    tiles_json=a.tiles, stitch_json=a.stitch, canvas=a.canvas, output=a.output,
    sidecar=a.sidecar, compression=a.compression), error_file=a.error_file))
