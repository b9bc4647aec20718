"""Run fault servers and `dezoom` commands inside a private network namespace, for the address-policy tests.

Usage (as a test does it): `unshare -rn python tests/netns_run.py PLAN.json RESULT.json`

`unshare -rn` gives a new user and network namespace: only a loopback interface, no route out,
so nothing a test does here can reach another machine. This script brings `lo` up, adds the
plan's extra addresses to it (e.g. 203.0.113.7, a documentation address standing for a public
host), starts one fault server per plan entry on its address, then runs each command of the
plan (`python -m dezoom_steps ARGS`, with `{name}` replaced by that server's base URL and
`{name_port}` by its port) and records exit code, stderr, wall time and the requests every
server received during that command. The servers are stopped (by pid) at the end.

Plan: {"addresses": ["203.0.113.7"], "servers": [{"name": "a", "host": "203.0.113.7", "root": DIR}],
       "files": [{"path": FILE, "text": "... {a_port} ..."}], "commands": [{"args": [...], "cwd": DIR}]}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from faultserver_fixture import start_fault_server  # noqa: E402

REPO = HERE.parent


def setup_loopback(addresses: list[str]) -> None:
    """Bring lo up and give it the extra addresses (we are root in our own namespace)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in addresses:
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


def main() -> int:
    """Read the plan, run it, write the results."""
    plan = json.loads(Path(sys.argv[1]).read_text())
    setup_loopback(plan.get("addresses", []))
    servers = {}
    try:
        for s in plan["servers"]:
            servers[s["name"]] = start_fault_server(Path(s["root"]), Path(s["root"]).parent / f"srv-{s['name']}",
                                                    host=s["host"])
        subst = {}
        for name, srv in servers.items():
            subst[name] = srv.base
            subst[f"{name}_port"] = str(srv.port)
        for f in plan.get("files", []):  # files naming the servers' ports, known only now
            Path(f["path"]).write_text(f["text"].format(**subst))
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = str(REPO)
        results = []
        for command in plan["commands"]:
            before = {name: len(srv.requests()) for name, srv in servers.items()}
            args = [a.format(**subst) for a in command["args"]]
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "dezoom_steps", *args], cwd=command["cwd"], env=env,
                                  capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            results.append({
                "args": args, "code": proc.returncode, "stderr": proc.stderr, "stdout": proc.stdout,
                "seconds": time.monotonic() - started,
                "requests": {name: srv.requests()[before[name]:] for name, srv in servers.items()},
            })
        Path(sys.argv[2]).write_text(json.dumps({"servers": subst, "results": results}))
    finally:
        for srv in servers.values():
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
