"""The floor of "fetch every tile and check it": curl, with dezoom's tile check running beside it.

Usage: curl_with_check.py CURL_CONFIG [--parallel N]

dezoom decodes every tile it keeps (its default `--tile-check decode`, field notes N4/S5);
curl does not. This peer does both jobs at C speed on the same machine at the same time: curl
fetches the tile URLs of CURL_CONFIG to files (as the `fetch.curl` figure does) while a second
process runs dezoom's own check (`tilecheck.check_tile`: libjpeg-turbo at 1/8 scale) over the
same tiles' bytes. Its wall time, from the start of both to the end of the later one, is what
any downloader that checks every tile needs here, before any work of its own.

Untimed first: curl fetches the tiles once into `reference/`, and the checker (an interpreter
with dezoom_steps, numpy and simplejpeg imported) reads them into memory. Timed: curl into
`tiles/` (the config's relative `output` paths, in the current folder) and the checks, started
together. Prints one JSON line: wall_s; user_s and sys_s of the timed part (curl's from
getrusage, the checker's own count); and what was fetched and checked.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The checker: reads the reference tiles, says "ready", checks them all on "go", reports.
CHECKER = r"""
import json, os, sys, time
import numpy, simplejpeg  # imported beforehand, as in dezoom's check helper once it runs
from dezoom_steps.tilecheck import TileInvalid, check_tile
folder = sys.argv[1]
bodies = [open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))]
print("ready", flush=True)
sys.stdin.readline()
cpu = os.times()
invalid = 0
for body in bodies:
    try:
        check_tile(body, "image/jpeg")
    except TileInvalid:
        invalid += 1
done = os.times()
print(json.dumps({"checked": len(bodies), "invalid": invalid, "user_s": done.user - cpu.user,
                  "sys_s": done.system - cpu.system}), flush=True)
"""


def curl(config: Path, parallel: int, cwd: Path) -> subprocess.Popen[str]:
    """curl --parallel fetching the config's URLs to its output paths under `cwd`."""
    return subprocess.Popen(["curl", "-s", "--parallel", "--parallel-max", str(parallel), "--create-dirs",
                             "-K", str(config), "-w", "%{http_code}\\n"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def main() -> int:
    """Run the untimed preparation, then curl and the checks together; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--parallel", type=int, default=16)
    args = ap.parse_args()
    config = args.config.resolve()
    reference = Path("reference")
    reference.mkdir(exist_ok=True)
    first = curl(config, args.parallel, reference)
    first.communicate()
    if first.returncode != 0:
        print(f"curl_with_check: the untimed curl run failed (exit {first.returncode})", file=sys.stderr)
        return 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    checker = subprocess.Popen([sys.executable, "-c", CHECKER, str(reference / "tiles")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    assert checker.stdin is not None and checker.stdout is not None
    if checker.stdout.readline().strip() != "ready":
        print("curl_with_check: the checker did not start", file=sys.stderr)
        return 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the untimed curl run is in it already
    start = time.perf_counter()
    checker.stdin.write("go\n")
    checker.stdin.flush()
    timed = curl(config, args.parallel, Path("."))
    out, _ = timed.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # + the timed curl run, not the checker yet
    checks = json.loads(checker.stdout.readline())
    wall = time.perf_counter() - start
    checker.stdin.close()
    checker.wait()
    codes = out.split()
    files = sum(1 for _ in Path("tiles").iterdir()) if Path("tiles").is_dir() else 0
    print(json.dumps({
        "wall_s": round(wall, 4),
        "user_s": round(after.ru_utime - before.ru_utime + checks["user_s"], 3),
        "sys_s": round(after.ru_stime - before.ru_stime + checks["sys_s"], 3),
        "status_200": codes.count("200"), "urls": len(codes), "files": files,
        "checked": checks["checked"], "invalid": checks["invalid"],
    }))
    return 0 if timed.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
