"""Retry policy by cause, per-host politeness and anti-bot blocks, against real fault servers on 127.0.0.1.

Every test reads the server's own request log (arrival times, counts) or the tile cache; the
`HostGate` tests drive the real gate with threads (no HTTP involved, nothing mocked).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from dezoom_steps import blockpage, cache, jsonio, net, politeness, retrypolicy, tiledownload
from dezoom_steps.errors import HostBlocked, NetworkError
from dezoom_steps.model import TileRef
from dezoom_steps.politeness import HostGate
from faultserver_fixture import FaultServer, fault_server  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
QUICK = dict(retry_delay=0.02, min_interval=0, timeout=5)


def png(color: tuple[int, int, int]) -> bytes:
    """A 16x16 PNG of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def hosts(tmp_path: Path, fault_server):  # noqa: F811
    """Two servers (two hosts: two ports of 127.0.0.1) over the same files a.png .. d.png."""
    root = tmp_path / "site"
    root.mkdir()
    files = {f"{n}.png": png(c) for n, c in (("a", (200, 0, 0)), ("b", (0, 200, 0)), ("c", (0, 0, 200)), ("d", (9, 9, 9)))}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return fault_server(root), fault_server(root), files


def tiles_of(urls: list[str]) -> list[TileRef]:
    """TileRefs 0..n-1 for `urls` (x = index, so first retry waits differ a little)."""
    return [TileRef(index=i, col=i, row=0, url=u, x=i, y=0, w=1, h=1) for i, u in enumerate(urls)]


def run(urls: list[str], **options) -> list[tiledownload.TileResult]:
    """download_tiles over `urls`, results by index."""
    opts = net.NetOptions(**{**QUICK, **options})
    return sorted(tiledownload.download_tiles(tiles_of(urls), opts, {}), key=lambda r: r.tile.index)


def write_tiles(path: Path, input_url: str, urls: list[str]) -> None:
    """A tiles.json (one row of 16 px tiles) whose tile URLs are `urls`."""
    tiles = [{"index": i, "col": i, "row": 0, "url": u, "x": 16 * i, "y": 0, "w": 16, "h": 16, "crop_x": 0,
              "crop_y": 0, "key": cache.cache_key(u)} for i, u in enumerate(urls)]
    width = 16 * len(urls)
    jsonio.write_step_json(path, "tiles", {
        "image": "test", "input_url": input_url, "dezoomer": "zoomify", "title": None, "headers": {},
        "selection": {"rule": "largest", "level_index": 0},
        "level": {"width": width, "height": 16, "tile_width": 16, "tile_height": 16},
        "canvas": {"width": width, "height": 16},
        "estimates": {"tiles": len(urls), "pixels": width * 16, "raw_bytes": width * 48}, "tiles": tiles})


def arrivals(srv: FaultServer, prefix: str = "") -> list[float]:
    """Sorted arrival times of the requests whose path starts with `prefix`."""
    return sorted(r["time"] for r in srv.requests() if r["path"].startswith(prefix))


def max_overlap(starts: list[float], duration: float) -> int:
    """Most requests in flight at once, each taking `duration` s from its arrival (server delay)."""
    return max(sum(1 for s in starts if s <= t < s + duration - 0.02) for t in starts)


# --- retry policy by cause ---------------------------------------------------------------------

def test_retries_by_cause_404_once_403_twice_5xx_all(hosts) -> None:
    srv, _, files = hosts
    paths = {
        "hole.png": 1,                                   # 404: never retried
        "m/fail=9,status=410/a.png": 1,                  # 410: never retried
        "m/fail=9,status=403/a.png": 2,                  # other 4xx: at most one retry
        "m/fail=9,status=400/b.png": 2,
        "m/fail=9,status=501/b.png": 1,                  # not implemented: final
        "m/fail=9,status=500/c.png": 4,                  # transient: every retry
        "m/fail=9,status=408/c.png": 4,
        "m/fail=9,status=425/d.png": 4,
        "m/fail=1,status=403/d.png": 2,                  # a 403 once, then the tile
    }
    results = run([srv.url(p) for p in paths], retries=3, parallelism=4)
    for (path, expected), res in zip(paths.items(), results):
        assert srv.count(path) == expected, path
        assert res.attempts == expected, path
    assert results[-1].ok and results[-1].data == files["d.png"]
    assert not any(r.ok for r in results[:-1])


def test_connection_errors_timeouts_and_truncation_are_retried(hosts, tmp_path: Path) -> None:
    srv, _, files = hosts
    (srv.root / "big.png").write_bytes(files["a.png"] + b"\0" * 2048)
    results = run([srv.url("m/truncate=2/big.png"), srv.url("m/fail=2,status=502/b.png")], retries=2)
    assert all(r.ok and r.attempts == 3 for r in results)
    refused = run(["http://127.0.0.1:9/a.png"], retries=2)[0]  # port 9 (discard): nothing listens
    assert not refused.ok and refused.attempts == 3 and refused.error.startswith("connection failed")


def test_retry_countdown_is_logged_and_rate_limited(hosts, caplog) -> None:
    srv, _, _ = hosts
    caplog.set_level(logging.INFO, logger="dezoom_steps")
    urls = [srv.url(f"m/fail=1,status=502,k={i}/a.png") for i in range(40)]
    start = time.monotonic()
    assert all(r.ok for r in run(urls, retries=1, parallelism=8, retry_delay=0.05))
    elapsed = time.monotonic() - start
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying ")]
    assert 1 <= len(lines) <= 1 + elapsed  # one line per second and host, not 40
    assert re.match(r"retrying http://127\.0\.0\.1:\d+/m/\S+ in 0\.\d s \(HTTP 502, attempt 2 of 2\)$", lines[0])
    assert f"127.0.0.1:{srv.port}: 40 retries (40 x HTTP 502)" in caplog.text


def test_retry_after_beyond_the_cap_waits_the_cap_and_says_so(hosts, caplog) -> None:
    srv, _, _ = hosts
    caplog.set_level(logging.INFO, logger="dezoom_steps")
    path = "m/fail=1,status=429,retry_after=120/a.png"
    (res,) = run([srv.url(path)], retries=1, max_retry_after=0.6)
    assert res.ok
    first, second = arrivals(srv)
    assert 0.55 <= second - first < 1.5
    assert "the server asked for 120 s, waiting the cap of 0.6 s (--max-retry-after)" in caplog.text


def test_document_retry_policy_and_cap(hosts, caplog) -> None:
    srv, _, files = hosts
    caplog.set_level(logging.INFO, logger="dezoom_steps")
    opts = net.NetOptions(retries=3, **QUICK)
    with pytest.raises(NetworkError, match="HTTP 404"):
        net.fetch_document(srv.url("nothing.json"), opts)
    with pytest.raises(NetworkError, match="HTTP 403"):
        net.fetch_document(srv.url("m/fail=9,status=403/a.png"), opts)
    assert srv.count("nothing.json") == 1 and srv.count("m/fail=9,status=403/a.png") == 2
    capped = net.NetOptions(retries=1, retry_delay=0.02, min_interval=0, timeout=5, max_retry_after=0.4)
    start = time.monotonic()
    assert net.fetch_document(srv.url("m/fail=1,status=503,retry_after=3600/b.png"), capped) == files["b.png"]
    assert 0.35 <= time.monotonic() - start < 2
    assert re.search(r"retrying \S+ in 0\.4 s \(HTTP 503, attempt 2 of 2\); the server asked for 3600 s", caplog.text)


def test_retry_wait_and_policy_are_pure() -> None:
    assert retrypolicy.first_delay(2.0, 30, 20) == 3.0  # spec §7.4: d + d*((x+y)%100)/100
    assert retrypolicy.retry_wait(1.0, None, 60) == (1.0, "")
    assert retrypolicy.retry_wait(1.0, 5.0, 60)[0] == 5.0
    assert retrypolicy.retry_wait(1.0, 500.0, 60)[0] == 60
    when = time.time() + 30  # an HTTP-date Retry-After, read without the cap
    asked = net.parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when)), cap=float("inf"))
    assert 27 <= retrypolicy.retry_wait(0.1, asked, 60)[0] <= 31
    assert [retrypolicy.retries_allowed(s, True, 5) for s in (None, 404, 410, 403, 401, 400, 429, 503, 501)] == \
        [5, 0, 0, 1, 1, 1, 5, 5, 0]
    assert retrypolicy.retries_allowed(403, True, 0) == 0


# --- per-host gate ---------------------------------------------------------------------------

def test_min_interval_is_per_host(hosts) -> None:
    a, b, _ = hosts
    urls = [a.url(f"m/k={i}/a.png") for i in range(3)] + [b.url(f"m/k={i}/b.png") for i in range(3)]
    start = time.monotonic()
    assert all(r.ok for r in run(urls, parallelism=6, min_interval=0.3))
    for srv in (a, b):
        times = arrivals(srv)
        assert len(times) == 3 and min(y - x for x, y in zip(times, times[1:])) >= 0.28
    assert time.monotonic() - start < 1.4  # one global interval would need 5 x 0.3 s


def test_host_parallelism_bounds_concurrency_per_host(hosts) -> None:
    a, b, _ = hosts
    urls = [a.url(f"m/delay=0.3,k={i}/a.png") for i in range(8)] + [b.url(f"m/delay=0.3,k={i}/b.png") for i in range(4)]
    assert all(r.ok for r in run(urls, parallelism=8, host_parallelism=2))
    assert max_overlap(arrivals(a), 0.3) == 2 and max_overlap(arrivals(b), 0.3) == 2
    both = arrivals(a) + arrivals(b)
    assert max_overlap(sorted(both), 0.3) >= 3  # the two hosts are fetched side by side


def test_retry_after_holds_every_request_to_that_host_only(hosts) -> None:
    a, b, _ = hosts
    urls = [a.url("m/fail=1,status=429,retry_after=1/a.png"), a.url("b.png"), a.url("c.png"),
            b.url("m/delay=0.2/a.png"), b.url("c.png")]
    assert all(r.ok for r in run(urls, parallelism=4, host_parallelism=1, retries=1))
    first_429, *others = arrivals(a)
    assert len(others) == 3 and min(others) - first_429 >= 0.95  # the retry and the two other tiles
    assert max(arrivals(b)) - first_429 < 0.9  # the other host was not held


def test_429_slows_the_host_down_and_it_recovers(hosts, caplog) -> None:
    srv, _, _ = hosts
    caplog.set_level(logging.INFO, logger="dezoom_steps")
    bad = srv.url("m/fail=1,status=429,retry_after=-/a.png")
    good = [srv.url(f"m/k={i}/b.png") for i in range(30)]
    assert all(r.ok for r in run([bad] + good, parallelism=4, retries=1))
    assert "answered HTTP 429: slowing down to 2 parallel requests, one every 0.10 s" in caplog.text
    assert "speeding up to 3 parallel requests" in caplog.text
    assert "back to full speed (4 parallel requests, one every 0.00 s)" in caplog.text
    t429 = next(r["time"] for r in srv.requests() if r["status"] == 429)
    times = [t for t in arrivals(srv) if t > t429 + 0.05]  # started after the slow-down
    gaps = sorted(y - x for x, y in zip(times[:6], times[1:7]))
    assert gaps[2] >= 0.08  # most starts are spaced by the new interval (one in flight may straddle it)


def test_gate_aimd_steps(caplog) -> None:
    """The gate's arithmetic: halve on 429/503 once per wave, +1 and interval / 2 per 10 successes."""
    caplog.set_level(logging.INFO, logger="dezoom_steps")
    gate = HostGate(parallelism=8, interval=0.0)
    tokens = [gate.acquire("h") for _ in range(8)]
    gate.release("h", tokens[0], 503, False)
    assert gate.pace("h") == (4, 0.1)
    gate.release("h", tokens[1], 429, False)  # same wave: no second slow-down
    assert gate.pace("h") == (4, 0.1)
    for t in tokens[2:]:
        gate.release("h", t, 200, True)
    epoch = gate.acquire("h")
    gate.release("h", epoch, 429, False)  # a new wave
    assert gate.pace("h") == (2, 0.2)
    paces = []
    clock = [0.0]
    fast = HostGate(parallelism=4, interval=0.0, clock=lambda: clock[0])
    fast.release("x", fast.acquire("x"), 503, False)
    assert fast.pace("x") == (2, 0.1)
    for _ in range(20):
        clock[0] += 1.0
        fast.release("x", fast.acquire("x"), 200, True)
        paces.append(fast.pace("x"))
    assert paces[9] == (3, 0.0) and paces[19] == (4, 0.0)
    assert "x: back to full speed" in caplog.text


# --- anti-bot blocks ---------------------------------------------------------------------------

def test_captcha_tile_stops_the_host(hosts, tmp_path: Path) -> None:
    a, b, files = hosts
    record = tmp_path / "cache" / "blocked-hosts.json"
    urls = [a.url("m/captcha=9/a.png")] + [a.url(f"m/k={i}/b.png") for i in range(29)] + [b.url("c.png")]
    opts = net.NetOptions(parallelism=1, retries=3, **QUICK)
    with pytest.raises(HostBlocked) as err:
        tiledownload.download_tiles(tiles_of(urls), opts, {}, block_file=record)
    message = str(err.value)
    assert err.value.exit_code == 4 and "\n" not in message
    assert message.startswith(f"127.0.0.1:{a.port} is blocking us: {urls[0]} answered with a Cloudflare challenge")
    assert re.search(r"Try again after \d\d:\d\d UTC \(in 1 hour\); cached tiles are kept, rerun to resume", message)
    assert [r["path"] for r in a.requests()] == ["/m/captcha=9/a.png"]  # no request after the challenge
    results = sorted(err.value.results, key=lambda r: r.tile.index)
    assert results[0].attempts == 1 and results[0].blocked
    assert all(r.blocked and r.attempts == 0 for r in results[1:30])
    assert results[30].ok and results[30].data == files["c.png"]  # the other host is not blocked
    saved = json.loads(record.read_text())
    assert set(saved) == {f"127.0.0.1:{a.port}"}
    assert 3500 < saved[f"127.0.0.1:{a.port}"]["retry_at"] - time.time() <= 3600


def test_sorry_redirect_blocks_and_the_record_stops_the_next_job(hosts, tmp_path: Path) -> None:
    a, _, files = hosts
    record = tmp_path / "blocked-hosts.json"
    opts = net.NetOptions(parallelism=2, retries=2, **QUICK)
    with pytest.raises(HostBlocked, match=r"google\.com/sorry \"unusual traffic\" page"):
        tiledownload.download_tiles(tiles_of([a.url("m/sorry=9/a.png")]), opts, {}, block_file=record)
    statuses = [(r["path"].split("?")[0], r["status"]) for r in a.requests()]
    assert statuses == [("/m/sorry=9/a.png", 302), ("/sorry/index", 429)]
    # Another job of the run (another shard, another image): stopped without a single request.
    with pytest.raises(HostBlocked):
        tiledownload.download_tiles(tiles_of([a.url("b.png"), a.url("c.png")]), opts, {}, block_file=record)
    with pytest.raises(HostBlocked):
        net.fetch_document(a.url("d.png"), net.NetOptions(block_file=str(record), **QUICK))
    assert len(a.requests()) == 2
    # --ignore-block forgets it.
    again = net.NetOptions(parallelism=2, retries=0, ignore_block=True, **QUICK)
    got = tiledownload.download_tiles(tiles_of([a.url("b.png")]), again, {}, block_file=record)
    assert got[0].ok and got[0].data == files["b.png"] and not record.exists()


def test_block_honours_retry_after_and_metadata_challenges(hosts) -> None:
    a, _, _ = hosts
    with pytest.raises(HostBlocked) as err:
        net.fetch_document(a.url("m/captcha=1,retry_after=600/info.json"), net.NetOptions(retries=3, **QUICK))
    assert "(in 10 minutes)" in str(err.value) and 590 < err.value.retry_at - time.time() <= 600
    assert a.count("m/captcha=1,retry_after=600/info.json") == 1  # a challenge is not retried


def test_fetch_step_writes_its_report_then_exits_4(hosts, tmp_path: Path) -> None:
    """The fetch script on a captcha: exit 4, one error line, the shard report written, a clean cache."""
    a, _, files = hosts
    urls = [a.url("a.png"), a.url("m/delay=0.2,captcha=9/b.png")] + [a.url(f"m/delay=0.2,k={i}/c.png") for i in range(4)]
    tiles_json, cache_dir, report = tmp_path / "tiles.json", tmp_path / "cache" / "img", tmp_path / "shard-0.json"
    write_tiles(tiles_json, a.url("ImageProperties.xml"), urls)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_tiles.py"), str(tiles_json), "--cache", str(cache_dir),
         "--report", str(report), "--parallelism", "1", "--retries", "2", "--retry-delay", "20ms",
         "--min-interval", "0", "--block-file", str(tmp_path / "cache" / "blocked-hosts.json")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert proc.returncode == 4 and len(errors) == 1 and "Traceback" not in proc.stderr
    assert "is blocking us" in errors[0] and "Try again after" in errors[0]
    body = json.loads(report.read_text())
    assert body["downloaded"] == 1 and len(body["failed"]) == 5
    assert all(f["error"].startswith("blocked:") for f in body["failed"])
    assert [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] == [cache.cache_key(urls[0])]
    assert (cache_dir / cache.cache_key(urls[0])).read_bytes() == files["a.png"]
    assert len(a.requests()) == 2
    assert (tmp_path / "cache" / "blocked-hosts.json").exists()


def test_cli_on_a_challenged_metadata_url_exits_4_with_one_line(hosts, tmp_path: Path) -> None:
    a, _, _ = hosts
    url = a.url("m/captcha=9/img.dzi")
    proc = subprocess.run([sys.executable, "-m", "dezoom_steps", url, str(tmp_path / "out.png"), "-r", "3"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "error:" in x]
    assert f"is blocking us: {url} answered with a Cloudflare challenge" in line and "Try again after" in line
    assert a.count("m/captcha=9/img.dzi") == 1 and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("status, url, headers, body, kind", [
    (200, "http://h/t.jpg", {"Content-Type": "text/html"}, b"<html><head><title>Just a moment...</title>", "Cloudflare"),
    (403, "http://h/t.jpg", {"cf-mitigated": "challenge"}, b"", "Cloudflare"),
    (429, "https://www.google.com/sorry/index?continue=x", {}, b"", "google.com/sorry"),
    (403, "http://h/t.jpg", {"Content-Type": "text/html"}, b"<html><div class='g-recaptcha'></div>", "captcha"),
    (200, "http://h/t.jpg", {}, b"<!DOCTYPE html><title>Are you a robot?</title><div class=\"h-captcha\">", "captcha"),
    (403, "http://h/t.jpg", {"Content-Type": "text/html"}, b"<p>Bulk download from your IP is not allowed</p>", "blocked"),
    (200, "http://h/t.jpg", {"Content-Type": "text/html"}, b"<p>Our systems have detected unusual traffic</p>", "unusual"),
])
def test_challenge_signatures(status: int, url: str, headers: dict, body: bytes, kind: str) -> None:
    assert kind in (blockpage.challenge_kind(status, url, headers, body) or "")


@pytest.mark.parametrize("status, headers, body", [
    (200, {"Content-Type": "text/html"}, b"<html><title>Museum</title><form><div class='g-recaptcha'></div></form>"),
    (403, {"Content-Type": "text/plain"}, b"referer required"),
    (404, {"Content-Type": "text/html"}, b"<html><title>404 Not Found</title></html>"),
    (200, {"Content-Type": "image/jpeg"}, b"\xff\xd8\xff cf-chl- captcha"),
    (200, {"Content-Type": "application/json"}, b'{"@context": "http://iiif.io/api/image/2/context.json"}'),
])
def test_ordinary_pages_are_not_challenges(status: int, headers: dict, body: bytes) -> None:
    assert blockpage.challenge_kind(status, "http://h/x", headers, body) is None


def test_block_record_file(tmp_path: Path) -> None:
    record = politeness.BlockRecord(tmp_path / "b.json")
    now = time.time()
    record.add(politeness.make_block("http://a.example:8080/x", "a captcha page", None, now))
    record.add(politeness.make_block("https://b.example/y", "a captcha page", 5, now))
    record.add(politeness.Block("old.example", "u", "k", now - 1))  # already over: dropped
    assert set(record.active()) == {"a.example:8080", "b.example"}
    (tmp_path / "b.json").write_text("not json")
    assert record.active() == {}
