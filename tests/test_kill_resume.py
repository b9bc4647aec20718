"""Kill and resume: one Snakemake download killed 20 times at random points during its fetch.

The workflow runs as a user runs it (`snakemake --cores 2` with the project's Snakefile, the
config on the command line, a tile cache folder). Its process group gets SIGINT (Ctrl-C) and
SIGKILL in turn, at seeded random moments while tiles are being fetched from the project's fault
server (`delay=` mode: every request takes a while, so a kill finds requests in flight). Every
next run is started exactly like the first one: resuming after a SIGKILL needs no
`snakemake --unlock` (the Snakefile clears a lock whose owner is gone, dezoom_steps/stalelock.py)
and no `--rerun-incomplete` (profiles/default sets it). Checked:

* the final image is byte-identical to an uninterrupted run's;
* after every kill, each cached tile holds exactly the server's bytes (nothing invalid cached);
* no tile that reached the cache is ever requested again, and each tile is requested at most once
  more than the number of kills during which it was in flight (requested, not yet cached).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dezoom_steps.cache import cache_key
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from interrupt import ctrl_c_default, group_gone

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.workflow

SEED = 20261122
KILLS = 20
W, H, TILE = 1000, 700, 64  # 16 x 11 = 176 tiles at the full-size level
DELAY = 0.2                 # s before each answer of the fault server
PARALLELISM = 4             # -> about 20 tiles/s, 9 s for the whole level
MAX_WAIT_AFTER_FETCH = 0.6  # a kill falls 0-0.6 s after the run's first tile request


def write_pyramid(folder: Path) -> Path:
    """A DeepZoom pyramid (64 px JPEG tiles, overlap 0) of a 1000 x 700 ramp image; its .dzi."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([x & 255, y & 255, (37 * (x >> 6) + 101 * (y >> 6)) & 255], axis=2).astype(np.uint8)
    image = Image.fromarray(rgb)
    top = math.ceil(math.log2(max(W, H)))
    for level in range(top, -1, -1):
        scale = 2 ** (top - level)
        lw, lh = max(1, math.ceil(W / scale)), max(1, math.ceil(H / scale))
        scaled = image if scale == 1 else image.resize((lw, lh), Image.LANCZOS)
        out = folder / "pyr_files" / str(level)
        out.mkdir(parents=True)
        for row in range(math.ceil(lh / TILE)):
            for col in range(math.ceil(lw / TILE)):
                box = (col * TILE, row * TILE, min(lw, (col + 1) * TILE), min(lh, (row + 1) * TILE))
                scaled.crop(box).save(out / f"{col}_{row}.jpg", quality=90)
    dzi = folder / "pyr.dzi"
    dzi.write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                   f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpg" Overlap="0" '
                   f'TileSize="{TILE}"><Size Width="{W}" Height="{H}"/></Image>\n')
    return dzi


def snakemake_cmd(workdir: Path, url: str, parallelism: int) -> list[str]:
    """The user's command: the project's workflow, config on the command line, a tile cache."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--cores", "2",
            "--config", f"url={url}", "output=resumed.png", "format=png", "cache_dir=tile-cache",
            "min_interval=0s", f"parallelism={parallelism}"]


def tile_paths(requests: list[dict], level: int) -> list[str]:
    """The request paths of full-size tiles, in arrival order."""
    marker = f"/pyr_files/{level}/"
    return [r["path"] for r in requests if marker in r["path"]]


def test_twenty_kills_during_fetch_then_resume_byte_identical(fault_server, tmp_path):  # noqa: F811
    site = tmp_path / "site"
    site.mkdir()
    write_pyramid(site)
    srv = fault_server(site)
    url = srv.url(f"m/delay={DELAY}/pyr.dzi")
    top = math.ceil(math.log2(max(W, H)))
    all_tiles = {f"/m/delay={DELAY}/pyr_files/{top}/{c}_{r}.jpg"
                 for r in range(math.ceil(H / TILE)) for c in range(math.ceil(W / TILE))}
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / ".xdg-cache"))

    # the uninterrupted run (same URL, so the same output; more parallel, so quicker)
    ref_dir = tmp_path / "uninterrupted"
    ref_dir.mkdir()
    ref = subprocess.run(snakemake_cmd(ref_dir, url, 16), cwd=ref_dir, env=env, capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = (ref_dir / "results" / "resumed.png").read_bytes()

    work = tmp_path / "run"
    work.mkdir()
    cache = work / "tile-cache" / "resumed"
    cmd = snakemake_cmd(work, url, PARALLELISM)
    rng = random.Random(SEED)
    cycles: list[tuple[set[str], set[str]]] = []  # per killed run: (tiles requested, cache after the kill)
    for k in range(KILLS):
        sig = signal.SIGINT if k % 2 == 0 else signal.SIGKILL
        seen = len(srv.requests())
        err = open(work / f"run-{k}.stderr", "w+")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(cmd, cwd=work, env=env, start_new_session=True, preexec_fn=ctrl_c_default,
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            deadline = time.monotonic() + 60
            while not tile_paths(srv.requests()[seen:], top):  # the fetch has begun
                if proc.poll() is not None:
                    err.seek(0)
                    pytest.fail(f"run {k + 1} ended (exit {proc.returncode}) before fetching a tile; "
                                f"resuming needed a manual step?\n{err.read()[-3000:]}")
                assert time.monotonic() < deadline, f"run {k + 1} fetched nothing within 60 s"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, MAX_WAIT_AFTER_FETCH))
            assert proc.poll() is None, f"run {k + 1} finished before its kill: too few tiles left"
            os.killpg(proc.pid, sig)
            proc.wait(timeout=60)
            assert group_gone(proc.pid, 10), f"run {k + 1}: processes outlived the {sig.name}"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            err.close()
        requested = set(tile_paths(srv.requests()[seen:], top))
        # temporary files (a write cut short) are dot-named and never read as tiles
        cached = {p.name for p in cache.glob("*") if not p.name.startswith(".")} if cache.is_dir() else set()
        # nothing invalid in the cache: every entry is exactly the server's file
        by_key = {cache_key(srv.base + p): p for p in all_tiles}
        for name in cached:
            assert name in by_key, f"cache entry {name} is no tile of this image"
            served = (site / by_key[name].split(f"/m/delay={DELAY}/", 1)[1]).read_bytes()
            assert (cache / name).read_bytes() == served, f"after kill {k + 1}: cached {by_key[name]} differs"
        cycles.append((requested, {by_key[n] for n in cached}))

    seen = len(srv.requests())
    final = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert final.returncode == 0, final.stderr[-3000:]
    final_requested = tile_paths(srv.requests()[seen:], top)

    # the final image: byte-identical to the uninterrupted run's, and complete
    assert (work / "results" / "resumed.png").read_bytes() == reference, "the resumed image differs"
    side = json.loads((work / "results" / "resumed.png.json").read_text())
    assert side["complete"] and side["tiles_total"] == len(all_tiles)

    # no tile that reached the cache is requested again
    for k, (_requested, cached) in enumerate(cycles):
        later = set(final_requested).union(*(req for req, _ in cycles[k + 1:]))
        again = cached & later
        assert not again, f"{len(again)} tiles cached by kill {k + 1} were fetched again, e.g. {sorted(again)[:3]}"
    # each tile: at most once per run, and at most 1 + (kills during which it was in flight) in all
    assert len(final_requested) == len(set(final_requested)), "a tile was requested twice in one run"
    total = {t: final_requested.count(t) for t in all_tiles}
    in_flight = dict.fromkeys(all_tiles, 0)
    for requested, cached in cycles:
        for t in requested:
            total[t] += 1
            if t not in cached:
                in_flight[t] += 1
    over = {t: (total[t], in_flight[t]) for t in all_tiles if total[t] > 1 + in_flight[t]}
    assert not over, f"tiles fetched more often than 1 + kills in flight: {sorted(over.items())[:5]}"
    assert all(total[t] >= 1 for t in all_tiles)
    assert sum(in_flight.values()) > 0, "no kill found a request in flight: the test did not test much"
    assert 0 < len(cycles[0][1]) < len(cycles[-1][1]) < len(all_tiles), "the kills were not spread over the fetch"
