"""Shared fixtures: `rig` starts the loopback tile servers (nginx + iipsrv) for the session."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from rigutil import RIG_DIR, Rig, rig_ports, rig_run_dir, servers_running
from slurm_fixture import slurm  # noqa: F401  (the `slurm` fixture, for every test module)

import required

unavailable = functools.partial(required.unavailable, need='the rig is required')  # skip locally, fail under CI=true

IIPSRV = os.environ.get("IIPSRV", "/usr/lib/iipimage-server/iipsrv.fcgi")
RIG_MARKER = "rig: needs the loopback tile servers (nginx, iipsrv, vips pyramids)"


def pytest_configure(config: pytest.Config) -> None:
    """Register the `rig` marker (unless pyproject.toml already does)."""
    if not any(line.startswith("rig:") for line in config.getini("markers")):
        config.addinivalue_line("markers", RIG_MARKER)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the `rig` fixture, so `-m "not rig"` leaves them out."""
    for item in items:
        if "rig" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rig)


@pytest.fixture(scope="session", autouse=True)
def _slurm_controller_up(request: pytest.FixtureRequest) -> None:
    """Keep the test cluster up for the session when SLURM is installed.

    Snakemake loads its SLURM executor plugin at every start, and the plugin asks the
    controller for its configuration (`scontrol show config`, a 10 s time-out when no
    controller answers), so every workflow test would wait about 10 s without it. Where the
    cluster cannot start, the SLURM tests report why (the `slurm` fixture); others go on.
    """
    if shutil.which("sinfo") is None:
        return
    try:
        request.getfixturevalue("slurm")
    except (pytest.skip.Exception, pytest.fail.Exception):
        pass


def _missing_tools() -> list[str]:
    """Names of the rig's programs that cannot be found."""
    missing = [t for t in ("vips", "curl", "openssl") if shutil.which(t) is None]
    if shutil.which("nginx") is None and not os.access("/usr/sbin/nginx", os.X_OK):
        missing.append("nginx")
    if not os.access(IIPSRV, os.X_OK):
        missing.append(IIPSRV)
    return missing


def _script(name: str, env: dict[str, str], timeout: float) -> None:
    """Run tests/rig/NAME; fail the session with its output if it fails."""
    try:
        proc = subprocess.run(["bash", str(RIG_DIR / name)], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"tests/rig/{name} took more than {timeout:.0f} s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"tests/rig/{name} failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}"
                    f"{proc.stderr[-1500:]}", pytrace=False)


def _stop(env: dict[str, str]) -> None:
    """Stop the rig's servers by their recorded pids (tests/rig/stop_servers.sh)."""
    subprocess.run(["bash", str(RIG_DIR / "stop_servers.sh")], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rig() -> Iterator[Rig]:
    """The running rig (see tests/rig/start_servers.sh); stopped at the end unless it was
    already running or RIG_KEEP=1."""
    missing = _missing_tools()
    if missing:
        unavailable(f"rig tools missing: {', '.join(missing)}; install them with "
                     "scripts/setup.sh --test (or tests/rig/install_packages.sh)")
    env = dict(os.environ)
    env["SIZES"] = os.environ.get("RIG_SIZES", "small")  # "small medium" for the bench
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    data_dir = Path(env.get("RIG_DATA_DIR", RIG_DIR / "data"))
    run_dir = rig_run_dir(env)
    _script("gen_pyramids.sh", env, timeout=900)
    was_running = servers_running(run_dir)
    try:
        _script("start_servers.sh", env, timeout=120)
    except BaseException:  # pytest.fail's exception is not an Exception subclass
        if not was_running:
            _stop(env)
        raise
    try:
        yield Rig(ports=rig_ports(env), data_dir=data_dir, run_dir=run_dir)
    finally:
        if not was_running and os.environ.get("RIG_KEEP") != "1":
            _stop(env)
