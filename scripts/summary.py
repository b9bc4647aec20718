"""Step script: summarise the output sidecars of a run; exit 6 when an image is incomplete."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dezoom_steps.stepcli import run_step  # noqa: E402
from dezoom_steps.steps.summary import summarize  # noqa: E402

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("sidecars", nargs="+", type=Path)
p.add_argument("--summary", type=Path, required=True, help="summary.json to write")
p.add_argument("--work", type=Path, required=True, help="the workflow's work folder")
a = p.parse_args()
sys.exit(run_step("summary", lambda: summarize(sidecars=a.sidecars, summary=a.summary, work=a.work)))
