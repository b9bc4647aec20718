"""The fetch_tiles step and its script, against a real fault-injecting server on 127.0.0.1."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from dezoom_steps import cache, jsonio, net
from dezoom_steps.steps.fetch_tiles import fetch_tiles
from faultserver_fixture import FaultServer, fault_server  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
FAST = net.NetOptions(parallelism=4, retries=1, retry_delay=0.05, min_interval=0, timeout=5)
COLS, ROWS, TILE = 3, 2, 50  # a 150x100 image in six 50x50 tiles


@pytest.fixture
def source(tmp_path: Path) -> dict[tuple[int, int], bytes]:
    """Six PNG tiles cut from one gradient image, in site/tiles/{col}_{row}.png."""
    image = Image.new("RGB", (COLS * TILE, ROWS * TILE))
    image.putdata([(x, y, (x * y) % 256) for y in range(ROWS * TILE) for x in range(COLS * TILE)])
    out = tmp_path / "site" / "tiles"
    out.mkdir(parents=True)
    tiles = {}
    for row in range(ROWS):
        for col in range(COLS):
            buf = io.BytesIO()
            image.crop((col * TILE, row * TILE, (col + 1) * TILE, (row + 1) * TILE)).save(buf, format="PNG")
            tiles[col, row] = buf.getvalue()
            (out / f"{col}_{row}.png").write_bytes(tiles[col, row])
    return tiles


def write_tiles_json(path: Path, input_url: str, urls: list[str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A tiles.json for a 3x2 grid of 50 px tiles whose URLs are `urls` (row-major)."""
    tiles = []
    for index, url in enumerate(urls):
        col, row = index % COLS, index // COLS
        tiles.append({"index": index, "col": col, "row": row, "url": url, "x": col * TILE, "y": row * TILE,
                      "w": TILE, "h": TILE, "crop_x": 0, "crop_y": 0, "key": cache.cache_key(url)})
    body = {
        "image": "test", "input_url": input_url, "dezoomer": "zoomify", "title": None,
        "headers": headers or {}, "selection": {"rule": "largest", "level_index": 0},
        "level": {"width": COLS * TILE, "height": ROWS * TILE, "tile_width": TILE, "tile_height": TILE},
        "canvas": {"width": COLS * TILE, "height": ROWS * TILE},
        "estimates": {"tiles": len(urls), "pixels": COLS * TILE * ROWS * TILE, "raw_bytes": COLS * TILE * ROWS * TILE * 3},
        "tiles": tiles,
    }
    return jsonio.write_step_json(path, "tiles", body)


def grid_paths(prefix: str = "") -> list[str]:
    """Server paths of the six tiles, row-major."""
    return [f"{prefix}tiles/{i % COLS}_{i // COLS}.png" for i in range(COLS * ROWS)]


def source_bytes(source: dict[tuple[int, int], bytes], index: int) -> bytes:
    return source[index % COLS, index // COLS]


@pytest.fixture
def setup(tmp_path: Path, source, fault_server):  # noqa: F811
    """A running server over the tiles, and paths for tiles.json, the cache and the report."""
    srv: FaultServer = fault_server(tmp_path / "site")
    return srv, tmp_path / "tiles.json", tmp_path / "cache", tmp_path / "fetch" / "shard-0.json"


def test_fetch_downloads_every_tile_into_the_cache(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    doc = write_tiles_json(tiles_json, srv.url("ImageProperties.xml"), [srv.url(p) for p in grid_paths()])
    got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST)
    for t in doc["tiles"]:
        assert cache.tile_path(cache_dir, t["key"]).read_bytes() == source_bytes(source, t["index"])
    assert got == jsonio.read_step_json(report, "fetch")
    jsonschema.validate(got, jsonio.contract("fetch"))
    assert (got["assigned"], got["cached"], got["downloaded"], got["failed"]) == (6, 0, 6, [])
    assert got["bytes"] == sum(len(b) for b in source.values())
    assert sorted(r["path"] for r in srv.requests()) == sorted("/" + p for p in grid_paths())


def test_resume_requests_only_missing_tiles_once(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    doc = write_tiles_json(tiles_json, srv.url("meta.xml"), [srv.url(p) for p in grid_paths()])
    for t in doc["tiles"][0::2]:  # tiles 0, 2, 4 are already cached
        cache.store(cache_dir, t["key"], source_bytes(source, t["index"]))
    # Tile 1's cache file is an HTML error page: invalid, so it must be fetched again.
    cache.tile_path(cache_dir, doc["tiles"][1]["key"]).write_bytes(b"<html>oops</html>")
    got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST)
    assert (got["cached"], got["downloaded"], got["failed"]) == (3, 3, [])
    requested = [r["path"] for r in srv.requests()]
    assert sorted(requested) == sorted("/" + p for p in grid_paths()[1::2])  # 1, 3, 5, each once
    assert cache.read_cached(cache_dir, doc["tiles"][1]["key"]) == source_bytes(source, 1)
    again = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST)
    assert (again["cached"], again["downloaded"]) == (6, 0) and len(srv.requests()) == 3


def test_shards_fetch_exactly_their_tiles(setup) -> None:
    srv, tiles_json, cache_dir, _ = setup
    write_tiles_json(tiles_json, srv.url("meta.xml"), [srv.url(p) for p in grid_paths()])
    seen = 0
    for k in range(4):
        report = tiles_json.parent / "fetch" / f"shard-{k}.json"
        got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, shard=k, shards=4, options=FAST)
        expected = [i for i in range(6) if i % 4 == k]
        new = [r["path"] for r in srv.requests()[seen:]]
        seen += len(new)
        assert sorted(new) == sorted("/" + grid_paths()[i] for i in expected)
        assert (got["shard"], got["shards"], got["assigned"], got["downloaded"]) == (k, 4, len(expected), len(expected))


def test_failures_are_reported_and_never_cached(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    paths = grid_paths()
    paths[1] = "m/html=99/" + paths[1]
    paths[2] = "m/truncate=99/" + paths[2]
    paths[3] = "tiles/hole.png"
    paths[4] = "m/fail=99,status=500/" + paths[4]
    doc = write_tiles_json(tiles_json, srv.url("meta.xml"), [srv.url(p) for p in paths])
    got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST)
    failed = {f["index"]: f for f in got["failed"]}
    assert sorted(failed) == [1, 2, 3, 4] and got["downloaded"] == 2
    assert "HTML page" in failed[1]["error"] and failed[1]["attempts"] == 2
    assert failed[2]["error"].startswith("truncated body") and failed[2]["attempts"] == 2
    assert (failed[3]["status"], failed[3]["attempts"]) == (404, 1) and srv.count("tiles/hole.png") == 1
    assert failed[4]["status"] == 500 and failed[4]["url"] == srv.url(paths[4])
    for t in doc["tiles"]:
        assert cache.tile_path(cache_dir, t["key"]).exists() == (t["index"] in (0, 5))
    assert jsonio.read_step_json(report, "fetch")["failed"] == got["failed"]


def test_level_and_user_headers_reach_the_server(setup) -> None:
    srv, tiles_json, cache_dir, report = setup
    urls = [srv.url("m/need_referer=1/" + p) for p in grid_paths()]
    write_tiles_json(tiles_json, srv.url("meta.xml"), urls, headers={"Referer": urls[0]})
    got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST)
    assert got["downloaded"] == 6
    assert {r["referer"] for r in srv.requests()} == {urls[0]}  # level header beats the input URL
    user = net.NetOptions(parallelism=2, retry_delay=0.05, min_interval=0, headers={"referer": "http://mine/"})
    fetch_tiles(tiles_json=tiles_json, cache_dir=tmp_cache(cache_dir), report=report, options=user)
    assert {r["referer"] for r in srv.requests()[6:]} == {"http://mine/"}  # user -H beats both


def tmp_cache(cache_dir: Path) -> Path:
    return cache_dir.with_name(cache_dir.name + "-2")


def test_decode_hook_output_is_what_gets_cached(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    for (col, row), data in source.items():  # the server holds "scrambled" tiles
        (srv.root / "tiles" / f"{col}_{row}.bin").write_bytes(data[::-1])
    urls = [srv.url(p.replace(".png", ".bin")) for p in grid_paths()]
    doc = write_tiles_json(tiles_json, srv.url("meta.xml"), urls)
    got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST,
                      decode=lambda raw, t: raw[::-1])
    assert got["downloaded"] == 6
    for t in doc["tiles"]:
        assert cache.read_cached(cache_dir, t["key"]) == source_bytes(source, t["index"])
    # Without the hook the scrambled bodies are not images: failed, nothing cached.
    other = tmp_cache(cache_dir)
    plain = fetch_tiles(tiles_json=tiles_json, cache_dir=other, report=report, options=FAST)
    assert len(plain["failed"]) == 6 and not other.exists()


def test_file_tiles_are_refused_for_an_http_input(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    urls = [srv.url(p) for p in grid_paths()]
    urls[5] = (srv.root / grid_paths()[5]).as_uri()
    doc = write_tiles_json(tiles_json, srv.url("meta.xml"), urls)
    got = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=report, options=FAST)
    (fail,) = got["failed"]
    assert fail["index"] == 5 and fail["attempts"] == 0 and "file: tile URLs" in fail["error"]
    assert not cache.tile_path(cache_dir, doc["tiles"][5]["key"]).exists()


def test_file_tiles_are_read_for_a_local_input(tmp_path: Path, source) -> None:
    root = tmp_path / "site"
    urls = [(root / p).as_uri() for p in grid_paths()]
    doc = write_tiles_json(tmp_path / "tiles.json", (root / "ImageProperties.xml").as_uri(), urls)
    got = fetch_tiles(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "c", report=tmp_path / "r.json",
                      options=FAST)
    assert got["downloaded"] == 6
    for t in doc["tiles"]:
        assert cache.read_cached(tmp_path / "c", t["key"]) == source_bytes(source, t["index"])


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/fetch_tiles.py from the repository root, as Snakemake would, uninstalled."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "scripts/fetch_tiles.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_script_fetches_and_reports(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    write_tiles_json(tiles_json, srv.url("meta.xml"), [srv.url(p) for p in grid_paths()])
    proc = run_script(str(tiles_json), "--cache", str(cache_dir), "--report", str(report), "--shard", "1",
                      "--shards", "2", "-n", "2", "--retry-delay", "50ms", "-i", "0", "-H", "Referer: http://h/")
    assert proc.returncode == 0, proc.stderr
    got = jsonio.read_step_json(report, "fetch")
    assert (got["shard"], got["assigned"], got["downloaded"]) == (1, 3, 3)
    assert {r["referer"] for r in srv.requests()} == {"http://h/"}


@pytest.mark.parametrize("args, code, needle", [
    (["--shard", "3", "--shards", "2"], 2, "invalid shard 3 of 2"),
    (["--parallelism", "0"], 2, "--parallelism must be at least 1"),
])
def test_script_errors_are_one_line(setup, args: list[str], code: int, needle: str) -> None:
    srv, tiles_json, cache_dir, report = setup
    write_tiles_json(tiles_json, srv.url("meta.xml"), [srv.url(p) for p in grid_paths()])
    proc = run_script(str(tiles_json), "--cache", str(cache_dir), "--report", str(report), *args)
    assert proc.returncode == code
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("fetch_tiles: error: ") and needle in line
    assert not report.exists()


def test_script_rejects_a_bad_header(setup) -> None:
    _, tiles_json, cache_dir, report = setup
    proc = run_script(str(tiles_json), "--cache", str(cache_dir), "--report", str(report), "-H", "https://x/")
    assert proc.returncode == 2 and "did you mean 'Referer: https://x/'" in proc.stderr


def test_killed_run_resumes_without_refetching_cached_tiles(setup, source) -> None:
    srv, tiles_json, cache_dir, report = setup
    doc = write_tiles_json(tiles_json, srv.url("meta.xml"), [srv.url("m/delay=0.3/" + p) for p in grid_paths()])
    args = [str(tiles_json), "--cache", str(cache_dir), "--report", str(report), "-n", "1", "-i", "0"]
    proc = subprocess.Popen([sys.executable, "scripts/fetch_tiles.py", *args], cwd=REPO)
    deadline = time.monotonic() + 20
    while len(list(cache_dir.glob("[0-9a-f]*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    kept = {p.name for p in cache_dir.glob("[0-9a-f]*")}
    assert 2 <= len(kept) < 6 and not report.exists()
    for name in kept:
        assert cache.read_cached(cache_dir, name) is not None  # every final name holds a whole tile
    restart = time.time()
    assert run_script(*args).returncode == 0
    got = jsonio.read_step_json(report, "fetch")
    assert got["cached"] == len(kept) and got["downloaded"] == 6 - len(kept)
    # By arrival time: the killed run's last request may be logged late (after its delay).
    refetched = [r["path"] for r in srv.requests() if r["time"] >= restart]
    cached_paths = {"/m/delay=0.3/" + grid_paths()[t["index"]] for t in doc["tiles"] if t["key"] in kept}
    assert not cached_paths & set(refetched) and len(refetched) == len(set(refetched)) == 6 - len(kept)
