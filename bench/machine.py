"""The facts every benchmark records about the machine and the code it measured."""

from __future__ import annotations

import os
import platform
import re
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
