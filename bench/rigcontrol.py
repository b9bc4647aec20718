"""The loopback rig for the suite: its environment, its data, its servers (started and
stopped only when the suite started them, by pid, through tests/rig/stop_servers.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
RIG_DIR = REPO / "tests" / "rig"
sys.path.insert(0, str(REPO / "tests"))
from rigutil import rig_ports, rig_run_dir, servers_running  # noqa: E402


class RigError(RuntimeError):
    """A rig script failed."""


@dataclass(frozen=True)
class RigInfo:
    """Where the running rig answers and keeps its files."""

    ports: dict[str, int]
    data_dir: Path
    run_dir: Path
    started_here: bool

    @property
    def static(self) -> str:
        """Base URL of the static nginx port."""
        return f"http://127.0.0.1:{self.ports['static']}"

    @property
    def iipsrv(self) -> str:
        """iipsrv's FastCGI endpoint behind nginx (add ?FIF=...)."""
        return f"http://127.0.0.1:{self.ports['iip']}/fcgi-bin/iipsrv.fcgi"

    @property
    def www(self) -> Path:
        """The folder the static port serves."""
        return self.data_dir / "www"

    def access_log(self, port_name: str) -> Path:
        """The access log of one nginx port (tests/rig/start_servers.sh: logs/access-<name>.log)."""
        return self.run_dir / "logs" / f"access-{port_name}.log"


def rig_env(sizes: str, big: bool) -> dict[str, str]:
    """The environment of the rig scripts and of every measured child."""
    env = dict(os.environ)
    env["SIZES"] = sizes
    env["BIG"] = "1" if big else "0"
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["VIPS_WARNING"] = "0"
    return env


def rig_script(name: str, env: dict[str, str], timeout: float) -> str:
    """Run tests/rig/NAME; its output, or RigError with the output's tail."""
    try:
        proc = subprocess.run(["bash", str(RIG_DIR / name)], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RigError(f"tests/rig/{name} took more than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise RigError(f"tests/rig/{name} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return proc.stdout


@contextmanager
def running_rig(env: dict[str, str], log: "Log") -> Iterator[RigInfo]:
    """Generate the rig's data if needed, start its servers unless they run, stop what was started."""
    log(f"rig: data (SIZES='{env['SIZES']}'{', BIG=1' if env['BIG'] == '1' else ''}), "
        "generated when missing")
    rig_script("gen_pyramids.sh", env, timeout=1800)
    run_dir = rig_run_dir(env)
    was_running = servers_running(run_dir)
    if not was_running:
        log(f"rig: starting the servers on port base {env.get('RIG_PORT_BASE', '18100')}")
    try:
        rig_script("start_servers.sh", env, timeout=120)
        yield RigInfo(rig_ports(env), Path(env.get("RIG_DATA_DIR", RIG_DIR / "data")), run_dir,
                      started_here=not was_running)
    finally:
        if not was_running:
            log("rig: stopping the servers the suite started")
            subprocess.run(["bash", str(RIG_DIR / "stop_servers.sh")], env=env, capture_output=True, timeout=60)


class Log:
    """Progress lines on stderr (stdout holds only the result table)."""

    def __call__(self, message: str) -> None:
        """Print one progress line."""
        print(f"bench: {message}", file=sys.stderr, flush=True)
