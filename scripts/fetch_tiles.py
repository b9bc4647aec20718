"""Step script: fetch one shard of an image's tiles into the tile cache (see dezoom_steps.steps.fetch_tiles)."""

import argparse
import sys
from pathlib import Path

try:
    import dezoom_steps  # noqa: F401
except ImportError:  # run from a checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dezoom_steps.errors import DezoomError
from dezoom_steps.netargs import add_net_arguments, net_options
from dezoom_steps.steps.fetch_tiles import fetch_tiles

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("tiles_json", type=Path, help="tiles.json written by list_tiles")
parser.add_argument("--cache", type=Path, required=True, help="tile cache folder of the image")
parser.add_argument("--report", type=Path, required=True, help="shard report to write (fetch/shard-K.json)")
parser.add_argument("--shard", type=int, default=0, help="this job's shard number K (0-based)")
parser.add_argument("--shards", type=int, default=1, help="number of shards N")
parser.add_argument("--progress", action="store_true", help="show a progress bar on a terminal")
add_net_arguments(parser)
args = parser.parse_args()
try:
    fetch_tiles(tiles_json=args.tiles_json, cache_dir=args.cache, report=args.report, shard=args.shard,
                shards=args.shards, options=net_options(args), progress=args.progress)
except DezoomError as err:
    print(f"dezoom-steps: {err}", file=sys.stderr)
    sys.exit(err.exit_code)
