"""Step script: expand bulk lists and IIIF manifests/collections into named entries -> bulk.json."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.netargs import add_net_arguments, net_options  # noqa: E402
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.expand import expand  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("sources", nargs="+", help="bulk list files or URLs, or manifest/collection URLs")
p.add_argument("-o", "--output", type=Path, required=True, help="bulk.json to write")
p.add_argument("--name-template", help="output name template, e.g. '{title}_{index:04}'")
add_net_arguments(p)
a = p.parse_args()
sys.exit(run_step("expand_bulk", lambda: expand(
    sources=a.sources, output=a.output, template=a.name_template, net_options=net_options(a))))
