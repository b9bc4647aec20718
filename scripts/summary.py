"""Step script: summarise a run's images (sidecars, errors, failed bulk entries); exit 6 if any is not complete."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.summary import summarize  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("sidecars", nargs="*", type=Path, help="output sidecars, named results/<image>.<ext>.json")
p.add_argument("--summary", type=Path, required=True, help="summary.json to write")
p.add_argument("--work", type=Path, required=True, help="the workflow's work folder")
p.add_argument("--bulk", type=Path, help="bulk.json of the run, if any (its failed entries are listed)")
a = p.parse_args()
images = [(s.name.rsplit(".", 2)[0], s) for s in a.sidecars]
sys.exit(run_step("summary", lambda: summarize(images=images, summary=a.summary, work=a.work, bulk=a.bulk)))
