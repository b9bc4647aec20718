"""The workflow on a real (one-node) SLURM cluster, through profiles/slurm and sbatch.

The cluster comes from the `slurm` fixture (tests/slurm_fixture.py). The harvest is the
embedded demo pyramid under three names and formats, read from disk, so no server is needed,
fetched by three shards per image: more parallel steps than the profile's cores cap, so a
group job that ignored the cap would ask for 3 CPUs. The profile is used as shipped; only the
plugin's status polling is made faster for a cluster where a job takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from interrupt import ctrl_c_default


REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
PROFILE = REPO / "profiles" / "slurm"
TIMEOUT = 300  # seconds for the whole run; about 100 s on 2 cores (one image at a time)
pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

HARVEST = {"inputs": [
    {"url": str(DEMO / "demo.dzi"), "name": "alpha", "format": "png"},
    {"url": str(DEMO / "demo.dzi"), "name": "beta", "format": "jpg"},
    {"url": str(DEMO / "demo.dzi"), "name": "gamma", "format": "tif"},
], "shards": 3}


def pixels(path: Path) -> np.ndarray:
    """The RGB pixels of an output image as int16 (room for differences)."""
    if path.suffix == ".tif":
        return tifffile.imread(path)[..., :3].astype(np.int16)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def run_detached(cmd: list[str], workdir: Path, log: Path, timeout: float) -> int | None:
    """Run `cmd` in its own session (signals sent to pytest's process group do not reach it:
    a stray SIGTERM puts the Snakemake head into a mode where it waits for ever), output to
    `log`. Returns the exit status, or None after interrupting it at the time-out."""
    env = dict(os.environ, XDG_CACHE_HOME=str(workdir / ".xdg-cache"))
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=ctrl_c_default)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the head scancels its jobs
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            return None


def test_a_harvest_runs_through_sbatch_as_one_job_per_image(slurm, tmp_path):  # noqa: F811
    cfg = tmp_path / "harvest.yaml"
    cfg.write_text(yaml.safe_dump(HARVEST))
    log = tmp_path / "snakemake.log"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--profile", str(PROFILE), "--configfile", str(cfg),
           # the plugin waits 40 s before its first status check, then 10 s longer after
           # each check that saw nothing finish; start at 1 s here
           "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
           # keep the SLURM logs of successful jobs (checked below); one machine, so the
           # profile's wait for a shared file system's latency is not needed
           "--slurm-keep-successful-logs", "--latency-wait", "5"]
    t0 = time.monotonic()
    try:
        status = run_detached(cmd, tmp_path, log, TIMEOUT)
    finally:
        left = slurm.cancel(tmp_path)
    seconds = time.monotonic() - t0
    text = log.read_text(errors="replace")
    assert status is not None, (f"the run did not finish in {TIMEOUT} s (cancelled jobs {left}; "
                                f"SLURM saw {slurm.jobs(tmp_path)}):\n{text[-3000:]}")
    assert status == 0, text[-3000:]
    print(f"\nSLURM run: {seconds:.1f} s; cluster start: {slurm.start_seconds:.2f} s")

    # the images: every input, in its format, with the source's pixels
    source = pixels(DEMO / "source.png")
    for name in ("alpha.png", "beta.jpg", "gamma.tif"):
        got = pixels(tmp_path / "results" / name)
        assert got.shape == source.shape, name
        assert np.abs(got - source).mean() < 4, f"{name} differs from the demo's source"
        assert json.loads((tmp_path / "results" / f"{name}.json").read_text())["complete"]
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["images"] == summary["complete"] == 3

    # SLURM's side: exactly one batch job per image, all finished well, all of this run
    jobs = slurm.jobs(tmp_path)
    assert len(jobs) == 3, f"expected one SLURM job per image, SLURM saw: {jobs}"
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    assert len({j["name"] for j in jobs}) == 1, "the jobs of one run share its run id as job name"
    cap = yaml.safe_load((PROFILE / "config.yaml").read_text())["cores"]
    assert cap < HARVEST["shards"]
    assert {int(j["cpus"]) for j in jobs} == {cap}, f"group jobs must ask for the capped {cap} CPUs: {jobs}"
    assert all(j["comment"].startswith("rule_per_image") for j in jobs), jobs
    for job in jobs:
        assert f"has been submitted with SLURM jobid {job['id']} " in text, f"job {job['id']} not from this run"

    # each job ran the steps of exactly one image; `summary` ran in the head process
    logs = {p.stem: p.read_text(errors="replace") for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert sorted(logs) == sorted(j["id"] for j in jobs), logs.keys()
    images_per_job = []
    for job_log in logs.values():
        for rule in ("resolve", "list_tiles", "fetch_tiles"):
            assert f"rule {rule}:" in job_log
        tiff = "image=gamma" in job_log  # a TIFF is stitched then encoded; other formats rendered in one job
        assert all((f"rule {r}:" in job_log) == tiff for r in ("stitch", "encode"))
        assert ("rule render:" in job_log) != tiff
        images_per_job.append({i for i in ("alpha", "beta", "gamma") if f"image={i}" in job_log})
        assert all(f"shard={k}" in job_log for k in range(HARVEST["shards"]))
    assert sorted(map(sorted, images_per_job)) == [["alpha"], ["beta"], ["gamma"]]
    assert "localrule summary:" in text and not any("rule summary:" in t for t in logs.values())
