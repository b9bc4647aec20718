"""Step script: fetch one shard of an image's tiles into the tile cache -> fetch/shard-K.json."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.netargs import add_net_arguments, net_options  # noqa: E402
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.fetch_tiles import fetch_tiles  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("tiles_json", type=Path, help="tiles.json written by list_tiles")
p.add_argument("--cache", type=Path, required=True, help="tile cache folder of the image")
p.add_argument("--report", type=Path, required=True, help="shard report to write (fetch/shard-K.json)")
p.add_argument("--shard", type=int, default=0, help="this job's shard number K (0-based)")
p.add_argument("--shards", type=int, default=1, help="number of shards N")
p.add_argument("--progress", action="store_true", help="show a progress bar on a terminal")
p.add_argument("--on-missing", choices=("blank", "fail", "fill"), default="blank",
               help="fail: exit 6 when a tile could not be fetched (blank and fill: report it)")
add_net_arguments(p)
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
a = p.parse_args()
sys.exit(run_step("fetch_tiles", lambda: fetch_tiles(
    tiles_json=a.tiles_json, cache_dir=a.cache, report=a.report, shard=a.shard, shards=a.shards,
    options=net_options(a), progress=a.progress, on_missing=a.on_missing), error_file=a.error_file))
