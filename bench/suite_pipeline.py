"""Figure group 3, pipeline overhead (issue 7 target 3): one small image through Snakemake
against the same image through the `dezoom` CLI, and the planning of a bulk list of 1,000
small images (the expand_bulk checkpoint, then `snakemake -n`), as bench/bench_bulk.py does."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench_bulk import make_pyramids, snakemake, write_list
from measure import measure
from suite_fetch import checked_output, dezoom_cmd
from suite_model import Context, Ratio, rotated

BULK_IMAGES = 1000
BULK_IMAGES_QUICK = 20
STEPS_PER_IMAGE = 4  # to PNG: resolve, list_tiles, fetch_tiles (1 shard), render


def workflow_env(ctx: Context, folder: Path) -> dict[str, str]:
    """The measured workflow's environment: Snakemake's cache in `folder`, and, unless
    --no-stub-scontrol, an `scontrol` that fails at once first in PATH.

    Snakemake's SLURM executor plugin (installed by scripts/setup.sh --slurm) runs
    `scontrol show config` each time snakemake starts; where SLURM's tools are installed but no
    controller answers, that waits about 10 s (README, "SLURM"). The stub takes this
    machine-specific wait out of the figures; the JSON records whether it was used.
    """
    env = dict(ctx.env, XDG_CACHE_HOME=str(folder / ".xdg-cache"))
    if ctx.settings.get("scontrol_stub"):
        stub = ctx.work / "stub-bin"
        stub.mkdir(exist_ok=True)
        (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (stub / "scontrol").chmod(0o755)
        env["PATH"] = f"{stub}:{env.get('PATH', '')}"
    return env


def run_pipeline(ctx: Context) -> None:
    """One small image (the rig's small static DZI, 12 tiles) to PNG: Snakemake against the CLI."""
    path = "/small/dz256o0q85.dzi"
    url = ctx.rig.static + path
    sm_args = ["--config", f"url={url}", "output=small.png", "min_interval=0s"]
    cli = [*dezoom_cmd(), url, "small.png", "--min-interval", "0", "-c", "cache"]
    ctx.settings["pipeline"] = {"image": path, "output": "PNG", "snakemake_cores": 2}
    fig_sm = ctx.figure("pipeline.snakemake", f"Snakemake workflow (repository Snakefile, --cores 2), one image "
                        f"{path} -> PNG, from an empty folder", "python -m snakemake --snakefile Snakefile --cores 2 " + " ".join(sm_args))
    fig_cli = ctx.figure("pipeline.cli", "the dezoom CLI, same image -> PNG, fresh cache", ctx.shown(cli))
    ctx.log(f"pipeline: {path} through Snakemake and through the CLI, {ctx.reps} repetitions")

    def workflow() -> None:
        folder = ctx.fresh_dir("pipeline-sm")
        run = measure([*snakemake(folder, *sm_args)], folder, workflow_env(ctx, folder))
        fig_sm.add(run, ctx.problems, checked_output(ctx, "small", folder / "results" / "small.png", None)
                   if run.ok else None)

    def direct() -> None:
        folder = ctx.fresh_dir("pipeline-cli")
        run = measure(cli, folder, ctx.env)
        fig_cli.add(run, ctx.problems, checked_output(ctx, "small", folder / "small.png", None) if run.ok else None)

    for rep in range(ctx.reps):
        for contender in rotated([workflow, direct], rep):
            contender()
    ctx.ratios.append(Ratio("pipeline.overhead_s", "Snakemake time - CLI time (seconds)", fig_sm.key, fig_cli.key,
                            kind="difference"))
    ctx.target("pipeline", "a Snakemake run of one small image costs at most 3 s more than the CLI",
               "ratio", "pipeline.overhead_s", "median", "<=", 3.0)


def run_bulk(ctx: Context) -> None:
    """Planning a bulk list of small local images: expand_bulk (checkpoint), then `snakemake -n`."""
    n = BULK_IMAGES_QUICK if ctx.quick else BULK_IMAGES
    pyramids = ctx.work / "bulk-pyramids"
    if not (pyramids / f"p{n - 1:04d}.dzi").exists():
        pyramids.mkdir(exist_ok=True)
        make_pyramids(pyramids, n)
    config = ["--config", "bulk=list.txt", "format=png"]
    ctx.settings["bulk"] = {"images": n, "image": "64x64 local DeepZoom pyramids (bench/bench_bulk.py)",
                            "snakemake_cores": 2}
    expand = ctx.figure("bulk.expand", f"snakemake --until expand_bulk on a list of {n} images (the checkpoint)",
                        "python -m snakemake --cores 2 --until expand_bulk " + " ".join(config))
    dry = ctx.figure("bulk.dry_run", f"snakemake -n after the checkpoint: planning every job of {n} images",
                     "python -m snakemake --cores 2 -n " + " ".join(config))
    ctx.log(f"bulk: planning {n} images, {ctx.reps} repetitions")
    for _ in range(ctx.reps):
        folder = ctx.fresh_dir("bulk-run")
        write_list(folder / "list.txt", n, str(pyramids))
        env = workflow_env(ctx, folder)
        run = measure(snakemake(folder, "--until", "expand_bulk", *config), folder, env)
        bulk_json = folder / "work" / "bulk.json"
        entries = len(json.loads(bulk_json.read_text())["entries"]) if run.ok and bulk_json.exists() else None
        expand.add(run, ctx.problems, {"ok": entries == n, "entries": entries} if run.ok else None)
        run = measure(snakemake(folder, "-n", *config), folder, env)
        total = re.search(r"^total\s+(\d+)", run.stdout + run.stderr, re.M)
        jobs = int(total[1]) if total else None
        dry.add(run, ctx.problems, {"ok": jobs is not None and jobs >= n * STEPS_PER_IMAGE, "jobs_planned": jobs}
                if run.ok else None)
    for name in ("bulk-run", "pipeline-sm", "pipeline-cli"):
        ctx.clear(name)
    ctx.target("bulk", f"a bulk of {BULK_IMAGES} small images plans in under 10 s (snakemake -n after the checkpoint)",
               "figure", dry.key, "median", "<", 10.0)

