#!/usr/bin/env python3
"""Benchmark of issue 4 ("Many images"): how the workflow scales with the number of images.

Inputs: N tiny local DeepZoom pyramids (64 x 64 pixels, a single tile at the largest level, each
a different colour), listed with titles in one bulk list. Everything is local (file: tiles), so
the figures are the workflow's own overhead, not downloads. Measured, each as a separate
process timed from outside (wall clock):

  expand      `snakemake --until expand_bulk` on an N-image list (N in --sizes): the bulk
              checkpoint alone (parse the list, check every local path, name every entry,
              write work/bulk.json).
  dry run     `snakemake -n` on the same folder AFTER the checkpoint has run. Before that, a dry
              run cannot see past the checkpoint (it plans expand_bulk + summary only; that
              figure is recorded too), so the figure that matters for a big list is this one:
              planning all N x 5 jobs. --reps times per size; once more under cProfile for the
              smallest size (top functions in the JSON).
  real run    `snakemake --cores 2` on the first M images (M = --real), from scratch; per-image
              overhead = wall / M. Every output is checked (size and colour).
  cli         `python -m dezoom_steps --bulk LIST --out-dir DIR` on the same M images: the same
              steps in one process (no Snakemake, no per-step interpreter), for comparison.
  baselines   `python3 -c pass`; `python3 scripts/resolve.py --help` (interpreter + the step's
              imports); `python3 -X importtime` of that script (largest imports); a trivial
              Snakefile with M x 5 jobs whose shell is `true` at --cores 2 (Snakemake's own
              per-job cost); the same with `python3 -c pass` as the shell command.

Writes bench/results/bulk-<date>.json and prints a short summary. Usage:
  python3 bench/bench_bulk.py [--sizes 100,250,500,1000] [--real 50] [--reps 1] [--keep DIR] [--output FILE]
No network is used. How long it takes depends mostly on the dry run of the largest list.
--stub-scontrol takes the start-up wait of the SLURM executor plugin out (see environment()).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "dezoom-steps/bench-bulk/1"
SIZE = 64  # pixels per side of each tiny image: one 64 px tile at the largest DeepZoom level
STEPS_PER_IMAGE = 5  # resolve, list_tiles, fetch_tiles (1 shard), stitch, encode
TARGET_DRY_RUN_S = 10.0
TARGET_PER_IMAGE_S = 1.0


# ------------------------------------------------------------------ inputs

def colour(i: int) -> tuple[int, int, int]:
    """A distinct, JPEG-robust colour per image (coarse steps on each channel)."""
    return (40 + (i * 37) % 180, 40 + (i * 71) % 180, 40 + (i * 113) % 180)


def make_pyramids(folder: Path, n: int) -> None:
    """N DeepZoom pyramids pNNNN.dzi of SIZE x SIZE pixels (levels 0..6, one tile each)."""
    top = (SIZE - 1).bit_length()  # DeepZoom: the full-size level is ceil(log2(max(W, H)))
    for i in range(n):
        name = f"p{i:04d}"
        (folder / f"{name}.dzi").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="256" Overlap="0" Format="jpg">'
            f'<Size Width="{SIZE}" Height="{SIZE}"/></Image>\n')
        for level in range(top + 1):
            side = max(1, SIZE >> (top - level))
            d = folder / f"{name}_files" / str(level)
            d.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (side, side), colour(i)).save(d / "0_0.jpg", quality=95)


def write_list(path: Path, n: int, pyramids: str) -> None:
    """A bulk list of the first N pyramids, titled `Plate NNNN`, with a comment and blank lines."""
    lines = [f"# {n} tiny images", ""]
    lines += [f"{pyramids}/p{i:04d}.dzi Plate {i:04d}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------ timing

def timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path | None = None,
          timeout: float = 3600) -> dict[str, Any]:
    """Run `cmd`; wall time, user and system CPU of the process tree, exit code."""
    before = os.times()
    t0 = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    after = os.times()
    return {"wall_s": round(wall, 3), "cpu_user_s": round(after.children_user - before.children_user, 3),
            "cpu_sys_s": round(after.children_system - before.children_system, 3), "exit": proc.returncode}


def repeat(n: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Median, min and max wall time of N runs of `cmd` (every run must succeed)."""
    runs = [timed(cmd, cwd, env) for _ in range(n)]
    bad = [r for r in runs if r["exit"] != 0]
    if bad:
        raise SystemExit(f"{' '.join(cmd)}: exit {bad[0]['exit']}")
    walls = [r["wall_s"] for r in runs]
    return {"median_s": round(statistics.median(walls), 3), "min_s": min(walls), "max_s": max(walls), "runs": n}


def snakemake(workdir: Path, *extra: str, snakefile: Path = REPO / "Snakefile") -> list[str]:
    """A snakemake command line on `snakefile` run in `workdir` with 2 cores."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
            "--cores", "2", *extra]


def environment(scratch: Path, stub_scontrol: bool) -> dict[str, str]:
    """The environment of every measured process: repository importable, caches in the scratch folder.

    With `stub_scontrol`, an `scontrol` that fails at once comes first in PATH: Snakemake's SLURM
    executor plugin, when installed, runs `scontrol show config` each time snakemake starts
    (even for --version), which waits about 10 s when SLURM's tools are installed but no
    controller answers; the stub takes that machine-specific wait out of the figures.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(scratch / ".xdg-cache"),
               TMPDIR=str(scratch / "tmp"))
    (scratch / "tmp").mkdir(exist_ok=True)
    if stub_scontrol:
        stub = scratch / "stub-bin"
        stub.mkdir(exist_ok=True)
        (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (stub / "scontrol").chmod(0o755)
        env["PATH"] = f"{stub}{os.pathsep}{env.get('PATH', '')}"
    return env


# ------------------------------------------------------------------ measurements

def profile_dry_run(workdir: Path, env: dict[str, str], out: Path, *config: str) -> list[dict[str, Any]]:
    """cProfile of one dry run (a child process); the 15 functions with the most cumulative time."""
    prof = out / "dry-run.prof"
    driver = out / "profile_driver.py"
    driver.write_text("import cProfile, runpy, sys\n"
                      "out = sys.argv[1]; sys.argv = ['snakemake'] + sys.argv[2:]\n"
                      "p = cProfile.Profile(); p.enable()\n"
                      "try:\n    runpy.run_module('snakemake', run_name='__main__')\n"
                      "except SystemExit:\n    pass\n"
                      "finally:\n    p.disable(); p.dump_stats(out)\n")
    cmd = [sys.executable, str(driver), str(prof), *snakemake(workdir, "-n", "--quiet", *config)[3:]]
    timed(cmd, workdir, env)
    stats = pstats.Stats(str(prof))
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": ncalls,
                     "tottime_s": round(tottime, 3), "cumtime_s": round(cumtime, 3)})
    rows.sort(key=lambda r: r["cumtime_s"], reverse=True)
    own = [r for r in rows if re.search(r"plan\.py|Snakefile|jsonio\.py|validators\.py", r["function"])]
    return rows[:15] + [r for r in own[:10] if r not in rows[:15]]


def measure_size(scratch: Path, pyr: Path, n: int, reps: int, env: dict[str, str],
                 timeout: float) -> dict[str, Any]:
    """For a list of N images: expand_bulk alone, then `snakemake -n` after it (REPS times)."""
    folder = scratch / f"list-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    write_list(folder / "list.txt", n, str(pyr))
    config = ("--config", "bulk=list.txt", "format=png")
    row: dict[str, Any] = {"images": n}
    row["dry_run_before_checkpoint"] = timed(snakemake(folder, "-n", *config), folder, env)
    expand = timed(snakemake(folder, "--until", "expand_bulk", *config), folder, env, log=folder / "expand.log")
    if expand["exit"] != 0:
        raise SystemExit(f"expand_bulk failed: see {folder / 'expand.log'}")
    row["expand"] = {**expand, "entries": len(json.loads((folder / "work" / "bulk.json").read_text())["entries"])}
    walls = []
    for rep in range(reps):
        log = folder / f"dry-run-{rep}.log"
        try:
            run = timed(snakemake(folder, "-n", *config), folder, env, log=log, timeout=timeout)
        except subprocess.TimeoutExpired:
            row["dry_run"] = {"timed_out_after_s": timeout}
            print(f"{n} images: dry run still running after {timeout:.0f} s; stopped", flush=True)
            return row
        if run["exit"] != 0:
            raise SystemExit(f"dry run of {n} images failed: see {log}")
        walls.append(run["wall_s"])
        planned = re.search(r"^total\s+(\d+)", log.read_text(), re.M)
        row["jobs_planned"] = int(planned[1]) if planned else None
    row["dry_run"] = {"median_s": round(statistics.median(walls), 3), "min_s": min(walls), "max_s": max(walls),
                      "runs": reps, "per_image_ms": round(1000 * statistics.median(walls) / n, 2)}
    print(f"{n} images: expand {expand['wall_s']} s, dry run {row['dry_run']['median_s']} s", flush=True)
    return row


def check_outputs(results: Path, n: int) -> list[str]:
    """Problems with the N outputs of a run: missing, wrong size or wrong colour."""
    problems = []
    for i in range(n):
        path = results / f"Plate {i:04d}.png"
        if not path.exists():
            problems.append(f"{path.name}: missing")
            continue
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            if rgb.size != (SIZE, SIZE):
                problems.append(f"{path.name}: size {rgb.size}")
                continue
            got = rgb.getpixel((SIZE // 2, SIZE // 2))
        if max(abs(a - b) for a, b in zip(got, colour(i))) > 6:
            problems.append(f"{path.name}: colour {got}, expected {colour(i)}")
    return problems


def trivial_workflow(folder: Path, jobs: int, shell: str) -> Path:
    """A Snakefile of `jobs` independent jobs running `shell` (Snakemake's own per-job cost)."""
    folder.mkdir(parents=True, exist_ok=True)
    snakefile = folder / "Snakefile"
    snakefile.write_text(
        f"N = {jobs}\n"
        "rule all:\n    input: expand('out/{i}.txt', i=range(N))\n"
        f"rule one:\n    output: 'out/{{i}}.txt'\n    shell: {shell!r} + ' && touch {{output}}'\n")
    return snakefile


def step_costs(folder: Path, dzi: Path, reps: int, env: dict[str, str]) -> dict[str, Any]:
    """Wall time of each step script on one tiny image, run by hand as the workflow runs it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    py, sc = sys.executable, REPO / "scripts"
    err = ["--error-file", str(folder / "error.json")]
    steps = {
        "resolve": [py, str(sc / "resolve.py"), str(dzi), "-o", "resolve.json", "-d", "auto", *err],
        "list_tiles": [py, str(sc / "list_tiles.py"), "resolve.json", "-o", "tiles.json", "--image", "x",
                       "--output-file", "x.png", *err],
        "fetch_tiles": [py, str(sc / "fetch_tiles.py"), "tiles.json", "--cache", "cache", "--report", "shard-0.json",
                        "--shard", "0", "--shards", "1", *err],
        "stitch": [py, str(sc / "stitch.py"), "--tiles", "tiles.json", "--cache", "cache", "--canvas", "canvas.tif",
                   "--report", "stitch.json", *err],
        "encode": [py, str(sc / "encode.py"), "--tiles", "tiles.json", "--stitch", "stitch.json", "--canvas",
                   "canvas.tif", "--output", "x.png", "--sidecar", "x.png.json", *err],
    }
    out: dict[str, Any] = {}
    for name, cmd in steps.items():
        walls = []
        for _ in range(reps):
            (folder / "x.png").unlink(missing_ok=True)
            (folder / "x.png.json").unlink(missing_ok=True)
            run = timed(cmd, folder, env)
            if run["exit"] != 0:
                raise SystemExit(f"step {name} failed (exit {run['exit']}): {' '.join(cmd)}")
            walls.append(run["wall_s"])
        out[name] = round(statistics.median(walls), 3)
    out["total"] = round(sum(out.values()), 3)
    return out


def import_times(env: dict[str, str]) -> list[dict[str, Any]]:
    """The 12 largest cumulative imports of scripts/resolve.py (python -X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "scripts" / "resolve.py"), "--help"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append({"module": m[4], "cumulative_ms": round(int(m[2]) / 1000, 1), "depth": len(m[3]) // 2})
    top = [r for r in rows if r["depth"] <= 1]
    top.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return top[:12]


def versions() -> dict[str, str]:
    """Versions of Python and the packages that matter here."""
    out = {"python": platform.python_version()}
    for pkg in ("snakemake", "jsonschema", "Pillow", "requests"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def main() -> int:
    """Run every measurement; write the JSON; print a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,250,500,1000",
                    help="list sizes of the dry-run measurements, comma-separated (100,250,500,1000)")
    ap.add_argument("--dry-run-timeout", type=float, default=1800, help="give up a dry run after this many s")
    ap.add_argument("--real", type=int, default=50, help="images of the real runs (50)")
    ap.add_argument("--reps", type=int, default=1, help="dry runs per size (1); baselines run 5 x this")
    ap.add_argument("--stub-scontrol", action="store_true",
                    help="put a failing `scontrol` first in PATH (see environment()); recorded in the JSON")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--output", type=Path, help="result JSON (default bench/results/bulk-<date>.json)")
    a = ap.parse_args()
    a.sizes = sorted(int(x) for x in a.sizes.split(","))
    a.images = max(a.sizes + [a.real])

    scratch = a.keep or Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    scratch.mkdir(parents=True, exist_ok=True)
    env = environment(scratch, a.stub_scontrol)
    result: dict[str, Any] = {
        "schema": SCHEMA, "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": os.getloadavg()},
        "versions": versions(), "sizes": a.sizes, "real_images": a.real, "tile_size_px": SIZE,
        "targets": {"dry_run_s": TARGET_DRY_RUN_S, "per_image_s": TARGET_PER_IMAGE_S}, "problems": [],
        "scontrol_stub": a.stub_scontrol,
    }
    try:
        pyr = scratch / "pyramids"
        if not (pyr / f"p{a.images - 1:04d}.dzi").exists():
            pyr.mkdir(exist_ok=True)
            make_pyramids(pyr, a.images)

        # ---- the bulk lists: checkpoint, then dry runs, for each size
        result["scale"] = []
        for n in a.sizes:
            result["scale"].append(measure_size(scratch, pyr, n, a.reps, env, a.dry_run_timeout))
        first = scratch / f"list-{a.sizes[0]}"
        result["dry_run_profile"] = {"images": a.sizes[0], "top": profile_dry_run(
            first, env, scratch, "--config", "bulk=list.txt", "format=png")}

        # ---- real runs on the first M images
        real = scratch / "real"
        shutil.rmtree(real, ignore_errors=True)
        real.mkdir()
        write_list(real / "list.txt", a.real, str(pyr))
        run = timed(snakemake(real, "--config", "bulk=list.txt", "format=png"), real, env, log=scratch / "real.log")
        problems = check_outputs(real / "results", a.real) if run["exit"] == 0 else [f"exit {run['exit']}"]
        result["problems"] += [f"workflow: {p}" for p in problems]
        result["real_run"] = {**run, "per_image_s": round(run["wall_s"] / a.real, 3),
                              "jobs": a.real * STEPS_PER_IMAGE + 3}
        rerun = timed(snakemake(real, "--config", "bulk=list.txt", "format=png"), real, env)
        result["real_rerun_nothing_to_do"] = rerun

        cli = scratch / "cli"
        shutil.rmtree(cli, ignore_errors=True)
        (cli / "out").mkdir(parents=True)
        write_list(cli / "list.txt", a.real, str(pyr))
        crun = timed([sys.executable, "-m", "dezoom_steps", "--bulk", "list.txt", "--out-dir", "out", "--format",
                      "png", "-c", "cache"], cli, env, log=scratch / "cli.log")
        cproblems = check_outputs(cli / "out", a.real) if crun["exit"] == 0 else [f"exit {crun['exit']}"]
        result["problems"] += [f"cli: {p}" for p in cproblems]
        result["cli_bulk"] = {**crun, "per_image_s": round(crun["wall_s"] / a.real, 3)}

        # ---- baselines
        jobs = a.real * STEPS_PER_IMAGE
        for name in ("trivial", "trivial-py"):
            shutil.rmtree(scratch / name, ignore_errors=True)
        triv = trivial_workflow(scratch / "trivial", jobs, "true")
        t_true = timed(snakemake(scratch / "trivial", snakefile=triv), scratch / "trivial", env)
        trivpy = trivial_workflow(scratch / "trivial-py", jobs, f"{sys.executable} -c pass")
        t_py = timed(snakemake(scratch / "trivial-py", snakefile=trivpy), scratch / "trivial-py", env)
        result["baselines"] = {
            "snakemake_version": repeat(a.reps * 3, [sys.executable, "-m", "snakemake", "--version"], REPO, env),
            "python_c_pass": repeat(a.reps * 5, [sys.executable, "-c", "pass"], REPO, env),
            "resolve_script_help": repeat(a.reps * 5, [sys.executable, str(REPO / "scripts" / "resolve.py"), "--help"],
                                          REPO, env),
            "snakemake_trivial_jobs": {**t_true, "jobs": jobs, "per_job_s": round(t_true["wall_s"] / jobs, 4)},
            "snakemake_python_pass_jobs": {**t_py, "jobs": jobs, "per_job_s": round(t_py["wall_s"] / jobs, 4)},
            "resolve_imports_top": import_times(env),
            "steps_one_image": step_costs(scratch / "steps", pyr / "p0000.dzi", a.reps * 3, env),
        }
    finally:
        result["machine"]["loadavg_after"] = os.getloadavg()
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    out = a.output or REPO / "bench" / "results" / f"bulk-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    summary(result)
    print(f"\nwritten: {out}")
    return 1 if result["problems"] else 0


def summary(r: dict[str, Any]) -> None:
    """Print the headline figures."""
    for row in r["scale"]:
        dry = row["dry_run"]
        took = f"{dry['median_s']} s ({dry['per_image_ms']} ms/image)" if "median_s" in dry else \
            f"more than {dry['timed_out_after_s']:.0f} s (stopped)"
        print(f"{row['images']:>5} images: expand_bulk {row['expand']['wall_s']} s; dry run after the checkpoint "
              f"{took}; before it {row['dry_run_before_checkpoint']['wall_s']} s")
    print(f"target: dry run of 1000 images < {TARGET_DRY_RUN_S} s")
    b, rr, c = r["baselines"], r["real_run"], r["cli_bulk"]
    print(f"real run, {r['real_images']} images, --cores 2: {rr['wall_s']} s = {rr['per_image_s']} s/image "
          f"(target < {TARGET_PER_IMAGE_S} s); rerun with nothing to do: {r['real_rerun_nothing_to_do']['wall_s']} s")
    print(f"dezoom --bulk, same images: {c['wall_s']} s = {c['per_image_s']} s/image (exit {c['exit']})")
    print(f"snakemake --version: {b['snakemake_version']['median_s']} s (start-up alone; scontrol stub: "
          f"{r['scontrol_stub']})")
    print(f"python -c pass: {b['python_c_pass']['median_s']} s; scripts/resolve.py --help: "
          f"{b['resolve_script_help']['median_s']} s")
    t, tp = b["snakemake_trivial_jobs"], b["snakemake_python_pass_jobs"]
    print(f"snakemake, {t['jobs']} jobs of `true`: {t['wall_s']} s ({t['per_job_s']} s/job); "
          f"of `python -c pass`: {tp['wall_s']} s ({tp['per_job_s']} s/job)")
    print(f"step scripts on one tiny image (s): {b['steps_one_image']}")
    if r["problems"]:
        print("PROBLEMS:", *r["problems"], sep="\n  ")


if __name__ == "__main__":
    sys.exit(main())
