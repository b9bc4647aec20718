#!/usr/bin/env python3
"""The benchmark suite of issue 7: dezoom side by side with curl, GDAL and itself under Snakemake.

    .venv/bin/python bench/run_suite.py                 # gdal, pipeline, bulk, fetch, politeness; 3 reps
    .venv/bin/python bench/run_suite.py --big           # + the 600 MP image; fetch on its 9,322 tiles
    .venv/bin/python bench/run_suite.py --quick --reps 1   # the small image only (the smoke test)
    .venv/bin/python bench/run_suite.py --only gdal,pipeline --reps 5
    .venv/bin/python bench/run_suite.py --render bench/results/suite-....json   # the tables again

Starts what it needs (rig data via tests/rig/gen_pyramids.sh, the servers via
tests/rig/start_servers.sh unless they run on RIG_PORT_BASE) and stops what it started.
Every figure is a separate process measured by /usr/bin/time -v, repeated --reps times; each
ratio is computed pair by pair (repetition i of ours against repetition i of the peer, run
back to back, the order alternating). Writes bench/results/suite-<date-time>.json (or
--output) and prints markdown tables. Exit status: 0, 1 when a run failed or an output was
wrong (listed under `problems`), 2 when something needed is missing. bench/README.md
describes every figure and target.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts, tool_versions  # noqa: E402
from measure import time_available, TIME_BIN  # noqa: E402
from rigcontrol import REPO, Log, RigError, rig_env, running_rig  # noqa: E402
from suite_fetch import run_fetch, run_politeness  # noqa: E402
from suite_gdal import run_gdal, run_scale  # noqa: E402
from suite_model import Context  # noqa: E402
from suite_pipeline import run_bulk, run_pipeline  # noqa: E402
from suite_report import SCHEMA, markdown, result_document, write_json_atomic  # noqa: E402

# The groups run in this order whatever order --only names them in. The GDAL group comes first:
# the fetch and scale groups create and remove tens of thousands of cached tiles, and on ext4
# the file creations of the next minutes then cost up to ten times more system time (the inode
# allocator steps past every recently freed inode). Our runs of the GDAL group create a file per
# tile and GDAL's none, so after the fetch group that cost, left by the suite itself, fell on
# one side only (DZI -> TIFF, ours: 0.80-0.91 s after the fetch group, 0.50-0.56 s first; GDAL 1.14-1.18 s).
GROUPS = {"gdal": run_gdal, "pipeline": run_pipeline, "bulk": run_bulk, "fetch": run_fetch,
          "polite": run_politeness, "scale": run_scale}
DEFAULT_GROUPS = ("gdal", "pipeline", "bulk", "fetch", "polite")
PACKAGES = ("dezoom-steps", "snakemake", "snakemake-executor-plugin-slurm", "requests", "urllib3", "pycurl",
            "Pillow", "numpy", "tifffile", "isal", "imagecodecs")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; --only is checked against the groups."""
    p = argparse.ArgumentParser(description="dezoom-steps benchmark suite (issue 7).")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every figure (default 3)")
    p.add_argument("--big", action="store_true", help="add the 600 MP scale figures; fetch the big DZI (9,322 tiles)")
    p.add_argument("--quick", action="store_true", help="the small image only, 20 bulk images (the smoke test)")
    p.add_argument("--only", help=f"comma-separated groups: {','.join(GROUPS)}")
    p.add_argument("--output", type=Path, help="result JSON (default bench/results/suite-<date-time>.json)")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    p.add_argument("--render", type=Path, metavar="JSON", help="print the tables of an earlier result and stop")
    p.add_argument("--no-stub-scontrol", action="store_true",
                   help="let Snakemake's SLURM plugin wait for a controller (see suite_pipeline.workflow_env)")
    a = p.parse_args(argv)
    if a.reps < 1:
        p.error("--reps must be at least 1")
    a.groups = a.only.split(",") if a.only else list(DEFAULT_GROUPS) + (["scale"] if a.big else [])
    unknown = set(a.groups) - set(GROUPS)
    if unknown:
        p.error(f"unknown group(s) {', '.join(sorted(unknown))}; groups are {', '.join(GROUPS)}")
    a.groups = [g for g in GROUPS if g in a.groups]
    if "scale" in a.groups and not a.big:
        p.error("the scale group needs --big (the 600 MP image)")
    if a.quick and a.big:
        p.error("--quick and --big exclude each other")
    return a


def missing_tools(groups: list[str]) -> list[str]:
    """The programs this run needs and cannot find."""
    missing = [] if time_available() else [f"{TIME_BIN} (Debian package time)"]
    needed = ["vips", "curl"] + (["gdal_translate"] if "gdal" in groups else [])
    missing += [t for t in needed if shutil.which(t) is None]
    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        missing.append("nginx")
    iipsrv = os.environ.get("IIPSRV", "/usr/lib/iipimage-server/iipsrv.fcgi")
    if not os.access(iipsrv, os.X_OK):
        missing.append(iipsrv)
    return missing


def versions() -> dict[str, str | None]:
    """Python, our package, Snakemake (from package metadata: `snakemake --version` would start the
    SLURM plugin) and the peers' versions."""
    def pkg(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    return {"python": platform.python_version(), "dezoom-steps": pkg("dezoom-steps"),
            "snakemake": pkg("snakemake"), **tool_versions()}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen groups on the rig; write the JSON; print the tables."""
    a = parse_args(argv)
    if a.render:
        print(markdown(json.loads(a.render.read_text())))
        return 0
    log = Log()
    missing = missing_tools(a.groups)
    if missing:
        print(f"bench: missing: {', '.join(missing)}; install them with scripts/setup.sh --test "
              "(tests/rig/install_packages.sh)", file=sys.stderr)
        return 2
    # Bytecode up to date before anything is timed, as scripts/setup.sh leaves it (a run that
    # compiles the package pays ~0.1 s per process that an installed copy does not).
    compileall.compile_dir(str(REPO / "dezoom_steps"), quiet=1)
    compileall.compile_dir(str(REPO / "scripts"), quiet=1)
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    env = rig_env("small" if a.quick else "small medium", big=a.big)
    work = a.keep or Path(tempfile.mkdtemp(prefix="dezoom-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    head = {"schema": SCHEMA, "started": started.isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None
            else argv, "options": {"reps": a.reps, "big": a.big, "quick": a.quick, "groups": a.groups,
                                   "scontrol_stub": not a.no_stub_scontrol},
            "machine": machine_facts(PACKAGES), "versions": versions(),
            "measured_with": f"{TIME_BIN} -v (wall time by the suite; peak RSS, user and system CPU of the "
                             "measured process and its children, by GNU time)"}
    try:
        with running_rig(env, log) as rig:
            ctx = Context(env, rig, work, a.reps, a.quick, a.big, log)
            ctx.settings["scontrol_stub"] = not a.no_stub_scontrol
            head["rig"] = {"port_base": int(env.get("RIG_PORT_BASE", "18100")), "static_port": rig.ports["static"],
                           "iip_port": rig.ports["iip"], "servers_started_by_suite": rig.started_here}
            for group in a.groups:
                try:
                    GROUPS[group](ctx)
                except (RuntimeError, OSError, ValueError) as exc:  # one group's failure leaves the others
                    ctx.problems.append(f"{group}: {exc}")
                    log(f"{group}: FAILED: {str(exc).splitlines()[0]}")
    except RigError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    head["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    head["load_average"] = {"before": [round(x, 2) for x in load_before],
                            "after": [round(x, 2) for x in os.getloadavg()]}
    doc = result_document(ctx, head)
    out = a.output or REPO / "bench" / "results" / f"suite-{started:%Y-%m-%d-%H%M%S}.json"
    write_json_atomic(out, doc)
    print(markdown(doc))
    log(f"wrote {out.resolve().relative_to(REPO) if out.resolve().is_relative_to(REPO) else out}")
    for problem in ctx.problems:
        log(f"PROBLEM: {problem.splitlines()[0]}")
    return 1 if ctx.problems else 0


if __name__ == "__main__":
    sys.exit(main())
