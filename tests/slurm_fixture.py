"""Pytest fixture `slurm`: a one-node SLURM cluster on this machine, for the whole session.

Use it by importing the fixture into a test module::

    from slurm_fixture import slurm  # noqa: F401  (tests/ is on sys.path)

    def test_x(slurm, tmp_path):
        ...                                   # sbatch / snakemake --executor slurm
        jobs = slurm.jobs(tmp_path)           # SLURM's record of the jobs run from tmp_path

The cluster is started by tests/slurm/start.sh (munged, slurmctld and slurmd as root, every
address on 127.0.0.1) and stopped by tests/slurm/stop.sh, by the pids it recorded, when the
last pytest session using it ends (sessions sign in under run/users/). A cluster started by
hand (no run/started-by-pytest marker), or SLURM_KEEP=1, is left running.
When the machine cannot run it (packages, plugin or root missing, daemons not starting) the
test is skipped with the reason, and fails with it under CI=true.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

import required

unavailable = functools.partial(required.unavailable, need='the SLURM test must run')  # skip locally, fail under CI=true

SLURM_DIR = Path(__file__).resolve().parent / "slurm"
SBIN = ("/usr/sbin", "/sbin")
PROGRAMS = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "munged")
# Job states after which SLURM does nothing more with a job (squeue --states=all shows them
# for MinJobAge seconds).
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


@dataclass
class SlurmCluster:
    """The running test cluster: where its files are and how long it took to start."""

    run_dir: Path
    start_seconds: float
    started_here: bool

    def jobs(self, workdir: Path) -> list[dict[str, str]]:
        """Every job SLURM still remembers whose working directory is `workdir`, oldest first:
        id, name, state, cpus, workdir and comment (Snakemake puts the rule or group there)."""
        proc = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%j|%T|%C|%Z|%k"],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"squeue failed: {proc.stderr.strip()}")
        rows = []
        for line in proc.stdout.splitlines():
            fields = line.strip().split("|", 5)
            if len(fields) == 6:
                rows.append(dict(zip(("id", "name", "state", "cpus", "workdir", "comment"), fields)))
        target = str(Path(workdir).resolve())
        mine = [r for r in rows if str(Path(r["workdir"]).resolve()) == target]
        return sorted(mine, key=lambda r: int(r["id"].split("_")[0]))

    def cancel(self, workdir: Path) -> list[str]:
        """Cancel the unfinished jobs run from `workdir` (their ids are returned)."""
        ids = [j["id"] for j in self.jobs(workdir) if j["state"] not in FINAL_STATES]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
        return ids


def _which(program: str) -> str | None:
    """The path of `program` on PATH or in an sbin folder, else None."""
    found = shutil.which(program)
    if found:
        return found
    return next((f"{d}/{program}" for d in SBIN if os.access(f"{d}/{program}", os.X_OK)), None)


def _script(name: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run tests/slurm/NAME (output captured); a time-out counts as exit status 124."""
    try:
        return subprocess.run(["bash", str(SLURM_DIR / name)], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return subprocess.CompletedProcess(exc.cmd, 124, out, f"timed out after {timeout:.0f} s")


def _live_users(users: Path) -> list[int]:
    """Pids of the pytest sessions signed in under `users` that still run (stale files go)."""
    live = []
    for entry in users.glob("*"):
        try:
            pid = int(entry.name)
            alive = b"pytest" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ValueError, OSError):
            alive = False
        if alive:
            live.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return live


def _why_not(env: dict[str, str]) -> str | None:
    """Why this machine cannot run the test cluster, or None when it can try."""
    missing = [p for p in PROGRAMS if _which(p) is None]
    if missing:
        return (f"SLURM programs missing: {', '.join(missing)}; install them with "
                "scripts/setup.sh --test (or tests/slurm/install.sh)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return ("snakemake-executor-plugin-slurm is not installed; "
                "run scripts/setup.sh --test (or pip install -e '.[slurm]')")
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True, env=env).returncode != 0:
            return "the SLURM daemons need root, and passwordless sudo is not available"
    return None


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """The running one-node cluster (tests/slurm/start.sh); stopped when the last pytest
    session using it ends, unless it was started by hand or SLURM_KEEP=1."""
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":" + ":".join(SBIN)
    reason = _why_not(env)
    if reason:
        unavailable(reason)
    run_dir = Path(env.get("SLURM_TEST_RUN_DIR") or SLURM_DIR / "run")
    users, marker = run_dir / "users", run_dir / "started-by-pytest"
    me = users / str(os.getpid())
    try:  # signed in before starting, so that an ending session does not stop it under us
        users.mkdir(parents=True, exist_ok=True)
        me.touch()
    except OSError as exc:
        unavailable(f"cannot write to {run_dir}: {exc}")
    t0 = time.monotonic()
    proc = _script("start.sh", env, timeout=90)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        me.unlink(missing_ok=True)
        unavailable(f"tests/slurm/start.sh could not start the cluster (exit {proc.returncode}): "
                     f"{(proc.stdout + proc.stderr).strip()[-1500:]}")
    started_here = "already running" not in proc.stdout
    if started_here:
        marker.touch()
    try:
        yield SlurmCluster(run_dir=run_dir, start_seconds=seconds, started_here=started_here)
    finally:
        me.unlink(missing_ok=True)
        if marker.exists() and not _live_users(users) and os.environ.get("SLURM_KEEP") != "1":
            _script("stop.sh", env, timeout=60)
            marker.unlink(missing_ok=True)
