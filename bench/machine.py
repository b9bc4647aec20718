"""The facts every benchmark records about the machine and the code it measured."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def machine_facts(packages: tuple[str, ...]) -> dict[str, Any]:
    """Cores, CPU model, memory, platform, Python, the versions of `packages` and the git commit."""
    cpu, mem_gb = "unknown", None
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
        kb = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
        mem_gb = round(int(kb.group(1)) / 1024 ** 2, 1) if kb else None
    except OSError:
        pass
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "memory_gb": mem_gb, "platform": platform.platform(), "python": platform.python_version(),
            "packages": versions, "git_commit": git.stdout.strip() + ("+dirty" if dirty else "")}


def first_line(cmd: list[str]) -> str | None:
    """The first line a version command prints (stdout, else stderr); None when it cannot run."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (p.stdout.strip() or p.stderr.strip()).splitlines()
    return lines[0].strip() if lines else None


def tool_versions() -> dict[str, str | None]:
    """Versions of the peers and servers the suite runs (None: not installed)."""
    nginx = "nginx" if shutil.which("nginx") else "/usr/sbin/nginx"
    curl = first_line(["curl", "--version"])
    return {"curl": " ".join(curl.split()[:2]) if curl else None,
            "gdal": first_line(["gdal_translate", "--version"]),
            "vips": first_line(["vips", "--version"]),
            "nginx": first_line([nginx, "-v"]),
            "iipsrv": first_line(["dpkg-query", "-W", "-f", "${Version}", "iipimage-server"]),
            "gnu_time": first_line(["dpkg-query", "-W", "-f", "${Version}", "time"])}
