"""Step script: resolve an input URL to work/{image}/resolve.json."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.netargs import add_net_arguments, net_options  # noqa: E402
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.resolve import resolve  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("url", help="URL or local path of the image metadata")
p.add_argument("-o", "--output", type=Path, required=True, help="resolve.json to write")
p.add_argument("-d", "--dezoomer", default="auto")
add_net_arguments(p)
p.add_argument("--error-file", type=Path, help="record an error here (for the run summary)")
args = p.parse_args()
sys.exit(run_step("resolve", lambda: resolve(
    url=args.url, output=args.output, dezoomer=args.dezoomer, net_options=net_options(args)),
    error_file=args.error_file))
