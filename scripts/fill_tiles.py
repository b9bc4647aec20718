"""Step script (--on-missing fill): fetch lower-level tiles covering the missing tiles -> fill.json."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.netargs import add_net_arguments, net_options  # noqa: E402
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.fill_tiles import fill_tiles  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--resolve", type=Path, required=True, help="resolve.json (all the levels)")
p.add_argument("--tiles", type=Path, required=True, help="tiles.json (the chosen level's tiles)")
p.add_argument("--cache", type=Path, required=True, help="tile cache folder of the image")
p.add_argument("--report", type=Path, required=True, help="fill.json to write")
add_net_arguments(p)
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()
sys.exit(run_step("fill_tiles", lambda: fill_tiles(
    resolve_json=a.resolve, tiles_json=a.tiles, cache_dir=a.cache, report=a.report,
    options=net_options(a)), error_file=a.error_file))
