"""dezoom_steps.net against a real fault-injecting HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import email.utils
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from dezoom_steps import net, tiledownload
from dezoom_steps.errors import InputError, NetworkError
from dezoom_steps.model import TileRef
from faultserver_fixture import FaultServer, fault_server  # noqa: F401

FAST = net.NetOptions(retries=1, retry_delay=0.05, min_interval=0, timeout=5)


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> bytes:
    """A small PNG of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def site(tmp_path: Path, fault_server) -> tuple[FaultServer, dict[str, bytes]]:  # noqa: F811
    """A server with a few PNG files (a.png, b.png, ...) and a 4 KB big.png."""
    root = tmp_path / "site"
    root.mkdir()
    files = {f"{name}.png": png_bytes(color) for name, color in
             (("a", (255, 0, 0)), ("b", (0, 255, 0)), ("c", (0, 0, 255)), ("d", (9, 9, 9)))}
    files["big.png"] = png_bytes((1, 2, 3), (64, 64)) + b"\0" * 4096  # PNG readers ignore the trailer
    for name, data in files.items():
        (root / name).write_bytes(data)
    return fault_server(root), files


def tile(index: int, url: str, x: int = 0, y: int = 0) -> TileRef:
    """A TileRef for the downloader (only index, url, x, y matter to it)."""
    return TileRef(index=index, col=0, row=0, url=url, x=x, y=y, w=1, h=1)


# --- parse_duration: spec §6 vectors -------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("2s", 2.0), ("29 s", 29.0), ("2min", 120.0), ("1000 ms", 1.0), ("50ms", 0.05),
    ("500 ms", 0.5), ("0", 0.0), ("3", 3.0), ("1500000000ns", 1.5),
])
def test_parse_duration_valid(text: str, seconds: float) -> None:
    assert net.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1 2 ms", "1 s s", "ms", "1j", "", "2h", "-1s", "s2"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(InputError, match="Invalid duration") as err:
        net.parse_duration(text)
    assert "\n" not in str(err.value)


# --- parse_header ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, pair", [
    ("Referer: https://example.org/a?b=c", ("Referer", "https://example.org/a?b=c")),  # first ':' only
    ("  X-Token :  abc def  ", ("X-Token", "abc def")),
    ("Cookie: a=b; c=d", ("Cookie", "a=b; c=d")),
    ("X-Empty:", ("X-Empty", "")),
])
def test_parse_header_valid(text: str, pair: tuple[str, str]) -> None:
    assert net.parse_header(text) == pair


@pytest.mark.parametrize("text, needle", [
    ("no colon here", "Expected 'Name: Value'"),
    (": value", "name before ':' is empty"),
    ("https://example.org/page", "did you mean 'Referer: https://example.org/page'"),
    ("Referrer: https://example.org/", "'Referer: https://example.org/'"),
    ("Referer https://example.org/", "did you mean 'Referer: https://example.org/'"),
    ("Bad(Name): x", "Invalid header name"),
    ("X-A: one\r\nX-B: two", "Invalid header value"),
    ("X-A: snow\u2603man", "Invalid header value"),
])
def test_parse_header_invalid(text: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        net.parse_header(text)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_net_options_refuses_impossible_values() -> None:
    with pytest.raises(InputError, match="parallelism"):
        net.NetOptions(parallelism=0)
    with pytest.raises(InputError, match="retries"):
        net.NetOptions(retries=-1)
    assert net.NetOptions().parallelism == 16 and net.NetOptions().min_interval == 0.05


def test_header_chain_last_wins_case_insensitively() -> None:
    options = net.NetOptions(headers={"referer": "https://user/", "X-Extra": "u"})
    headers = net.build_headers(options, "https://input/", {"Referer": "https://tile0/", "Accept": "image/*"})
    lowered = {k.lower(): v for k, v in headers.items()}
    assert len(lowered) == len(headers)  # no duplicate names under different case
    assert lowered["referer"] == "https://user/"  # user -H beats level headers and the input URL
    assert lowered["accept"] == "image/*"  # level headers beat defaults
    assert lowered["user-agent"] == net.DEFAULT_HEADERS["User-Agent"]
    assert net.build_headers(net.NetOptions(), "https://input/")["Referer"] == "https://input/"
    assert "Referer" not in net.build_headers(net.NetOptions(), "file:///images/x.dzi")


def test_parse_retry_after() -> None:
    assert net.parse_retry_after("3") == 3.0
    assert net.parse_retry_after("100000") == net.MAX_RETRY_AFTER
    assert net.parse_retry_after(None) is None and net.parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= net.parse_retry_after(later) <= 10.0
    assert net.parse_retry_after(email.utils.formatdate(time.time() - 100, usegmt=True)) == 0.0


# --- fetch_document --------------------------------------------------------------------------

def test_fetch_document_sends_the_header_chain(site) -> None:
    srv, files = site
    options = net.NetOptions(headers={"Accept-Language": "fr"}, retry_delay=0.05, min_interval=0)
    assert net.fetch_document(srv.url("a.png"), options, referer="http://viewer.example/page") == files["a.png"]
    (req,) = srv.requests()
    assert req["referer"] == "http://viewer.example/page"
    assert req["user_agent"] == net.DEFAULT_HEADERS["User-Agent"]
    assert req["accept_language"] == "fr"


def test_fetch_document_http_error_is_one_line_naming_the_url(site) -> None:
    srv, _ = site
    url = srv.url("missing.xml")
    with pytest.raises(NetworkError) as err:
        net.fetch_document(url, FAST)
    assert str(err.value) == f"{url}: HTTP 404 Not Found"
    assert srv.count("missing.xml") == 1  # a 404 is final: not retried


def test_fetch_document_retries_a_503_then_succeeds(site) -> None:
    srv, files = site
    path = "m/fail=1,retry_after=-/a.png"
    assert net.fetch_document(srv.url(path), FAST) == files["a.png"]
    assert [r["status"] for r in srv.requests()] == [503, 200]


def test_fetch_document_gives_up_after_retries(site) -> None:
    srv, _ = site
    url = srv.url("m/fail=9,status=500/a.png")
    with pytest.raises(NetworkError, match=r"HTTP 500 Internal Server Error$"):
        net.fetch_document(url, FAST)
    assert srv.count("m/fail=9,status=500/a.png") == 2  # retries=1: two attempts


def test_fetch_document_timeout_is_one_line_naming_the_url(site) -> None:
    srv, _ = site
    url = srv.url("m/delay=3/a.png")
    options = net.NetOptions(retries=0, timeout=0.5, min_interval=0)
    start = time.monotonic()
    with pytest.raises(NetworkError) as err:
        net.fetch_document(url, options)
    assert time.monotonic() - start < 2.0
    assert str(err.value).startswith(f"{url}: timed out after 0.5 s")
    assert "\n" not in str(err.value)


def test_overall_deadline_stops_a_trickling_body(site) -> None:
    """Each piece arrives quickly, but the whole body would take 6 s: the deadline ends it."""
    srv, _ = site
    url = srv.url("m/trickle=0.1/big.png")
    options = net.NetOptions(retries=0, timeout=0.6, min_interval=0)
    start = time.monotonic()
    with pytest.raises(NetworkError, match="timed out after 0.6 s"):
        net.fetch_document(url, options)
    assert time.monotonic() - start < 1.5


def test_connection_refused_names_the_url(site) -> None:
    srv, _ = site
    url = srv.url("a.png")
    srv.stop()
    with pytest.raises(NetworkError) as err:
        net.fetch_document(url, net.NetOptions(retries=0, min_interval=0))
    assert str(err.value).startswith(f"{url}: connection failed (")
    assert "\n" not in str(err.value) and "0x" not in str(err.value)


def test_fetch_document_local_files(tmp_path: Path) -> None:
    doc = tmp_path / "info.json"
    doc.write_bytes(b'{"a": 1}')
    assert net.fetch_document(doc.as_uri(), FAST) == b'{"a": 1}'
    with pytest.raises(NetworkError, match="no such file"):
        net.fetch_document((tmp_path / "nope.json").as_uri(), FAST)


def test_redirect_chain_keeps_referer_and_cookie(site) -> None:
    srv, files = site
    options = net.NetOptions(headers={"Cookie": "session=s3cret"}, retries=0, min_interval=0)
    data = net.fetch_document(srv.url("m/redirect=3,need_cookie=s3cret/a.png"), options, referer="http://in/")
    assert data == files["a.png"]
    reqs = srv.requests()
    assert [r["status"] for r in reqs] == [302, 302, 302, 200]
    # No automatic Referer on redirect: every hop carries the input URL, not the previous hop.
    assert {r["referer"] for r in reqs} == {"http://in/"}


def test_cross_origin_redirect_drops_credentials_but_keeps_referer(tmp_path: Path, site, fault_server) -> None:  # noqa: F811
    srv, files = site
    other = fault_server(srv.root, host="127.0.0.2")  # same files, another host: another origin
    options = net.NetOptions(headers={"Cookie": "session=s3cret"}, retries=0, min_interval=0)
    url = srv.url(f"m/goto={other.port},gohost=127.0.0.2/a.png")
    assert net.fetch_document(url, options, referer="http://in/") == files["a.png"]
    (hop,) = other.requests()
    assert hop["cookie"] is None and hop["referer"] == "http://in/"
    assert srv.requests()[0]["cookie"] == "session=s3cret"


def test_too_many_redirects(site) -> None:
    srv, _ = site
    with pytest.raises(NetworkError, match="more than 10 redirects"):
        net.fetch_document(srv.url("m/redirect=15/a.png"), FAST)


# --- download_tiles --------------------------------------------------------------------------

def download(srv: FaultServer, paths: list[str], options: net.NetOptions = FAST, **kw) -> list[tiledownload.TileResult]:
    """Download `paths` of `srv` as tiles 0..n-1; results sorted by index."""
    tiles = [tile(i, srv.url(p)) for i, p in enumerate(paths)]
    results = tiledownload.download_tiles(tiles, options, net.build_headers(options, srv.url("meta")), **kw)
    return sorted(results, key=lambda r: r.tile.index)


def test_tiles_retry_then_succeed(site) -> None:
    srv, files = site
    (res,) = download(srv, ["m/fail=2,retry_after=-/b.png"], net.NetOptions(retries=2, retry_delay=0.05, min_interval=0))
    assert res.ok and res.data == files["b.png"] and res.attempts == 3
    assert srv.count("m/fail=2,retry_after=-/b.png") == 3


def test_tiles_give_up_after_retries(site) -> None:
    srv, _ = site
    (res,) = download(srv, ["m/fail=9,retry_after=-/b.png"])
    assert not res.ok and res.status == 503 and res.attempts == 2
    assert res.error == "HTTP 503 Service Unavailable"
    assert srv.count("m/fail=9,retry_after=-/b.png") == 2


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(site, status: int) -> None:
    srv, files = site
    path = f"m/fail=1,status={status},retry_after=1/c.png"
    start = time.monotonic()
    (res,) = download(srv, [path])
    assert res.ok and res.data == files["c.png"]
    assert time.monotonic() - start >= 0.95  # retry_delay is 0.05 s; the server asked for 1 s
    first, second = srv.requests()
    assert (first["status"], second["status"]) == (status, 200)
    assert second["time"] - first["time"] >= 0.95


def test_404_holes_are_not_retried(site) -> None:
    srv, _ = site
    results = download(srv, ["hole.png", "a.png", "m/fail=9,status=410/a.png"],
                       net.NetOptions(retries=5, retry_delay=0.05, min_interval=0))
    assert [r.status for r in results] == [404, 200, 410]
    assert results[0].attempts == 1 and results[0].error == "HTTP 404 Not Found"
    assert srv.count("hole.png") == 1 and srv.count("m/fail=9,status=410/a.png") == 1


def test_truncated_body_is_an_error_and_retried(site) -> None:
    srv, files = site
    bad, healed = download(srv, ["m/truncate=9/big.png", "m/truncate=1/big.png"])
    assert not bad.ok and bad.data is None and bad.attempts == 2
    size = len(files["big.png"])
    assert bad.error == f"truncated body: got {size // 2} of {size} bytes"
    assert healed.ok and healed.data == files["big.png"] and healed.attempts == 2


@pytest.mark.parametrize("fault, needle", [("html=9", "got an HTML page"), ("empty=9", "empty body")])
def test_bodies_that_are_not_images_fail(site, fault: str, needle: str) -> None:
    srv, _ = site
    (res,) = download(srv, [f"m/{fault}/a.png"])
    assert not res.ok and res.data is None and needle in res.error and res.attempts == 2


def test_process_hook_failures_are_retried(site) -> None:
    srv, files = site
    calls: list[int] = []

    def flaky(tile: TileRef, raw: bytes) -> bytes:
        calls.append(tile.index)
        if len(calls) == 1:
            raise ValueError("bad padding")
        return raw

    (res,) = download(srv, ["d.png"], process=flaky)
    assert res.ok and res.data == files["d.png"] and res.attempts == 2 and srv.count("d.png") == 2


def test_parallel_downloads_overlap(site) -> None:
    srv, _ = site
    options = net.NetOptions(parallelism=4, retries=0, min_interval=0)
    start = time.monotonic()
    results = download(srv, [f"m/delay=0.5/{n}.png" for n in "abcd"], options)
    assert all(r.ok for r in results)
    assert time.monotonic() - start < 1.4  # one after the other would take 2 s


def test_min_interval_spaces_request_starts(site) -> None:
    srv, _ = site
    options = net.NetOptions(parallelism=4, retries=0, min_interval=0.15)
    download(srv, ["a.png", "b.png", "c.png", "d.png"], options)
    times = sorted(r["time"] for r in srv.requests())
    assert len(times) == 4
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.13


def test_retry_waits_follow_the_jitter_formula(site) -> None:
    """Spec §7.4: wait = d + d*((x+y)%100)/100; tile (0,0) waits d, tile (30,20) waits 1.5 d."""
    srv, _ = site
    options = net.NetOptions(parallelism=2, retries=1, retry_delay=0.4, min_interval=0)
    tiles = [tile(0, srv.url("m/fail=1,retry_after=-/a.png"), 0, 0),
             tile(1, srv.url("m/fail=1,retry_after=-/b.png"), 30, 20)]
    assert all(r.ok for r in tiledownload.download_tiles(tiles, options, {}))
    by_path: dict[str, list[float]] = {}
    for r in srv.requests():
        by_path.setdefault(r["path"], []).append(r["time"])
    gap_a = by_path["/m/fail=1,retry_after=-/a.png"][1] - by_path["/m/fail=1,retry_after=-/a.png"][0]
    gap_b = by_path["/m/fail=1,retry_after=-/b.png"][1] - by_path["/m/fail=1,retry_after=-/b.png"][0]
    assert 0.38 <= gap_a < 0.55
    assert 0.58 <= gap_b < 0.8


def test_one_thread_reuses_its_connection(site) -> None:
    srv, _ = site
    options = net.NetOptions(parallelism=1, retries=0, min_interval=0)
    assert all(r.ok for r in download(srv, ["a.png", "b.png", "c.png", "d.png"], options))
    assert len({r["port"] for r in srv.requests()}) == 1


def test_on_result_gets_bytes_and_results_drop_them(site) -> None:
    srv, files = site
    seen: dict[int, bytes | None] = {}
    results = download(srv, ["a.png", "b.png"], on_result=lambda r: seen.__setitem__(r.tile.index, r.data))
    assert seen == {0: files["a.png"], 1: files["b.png"]}
    assert all(r.ok and r.data is None for r in results)


def test_local_tiles_only_when_allowed(tmp_path: Path) -> None:
    local = tmp_path / "t.png"
    local.write_bytes(png_bytes((5, 6, 7)))
    tiles = [tile(0, local.as_uri()), tile(1, (tmp_path / "missing.png").as_uri())]
    refused = tiledownload.download_tiles(tiles, FAST, {})
    assert all(not r.ok and r.attempts == 0 and "only allowed when the input" in r.error for r in refused)
    got = sorted(tiledownload.download_tiles(tiles, FAST, {}, allow_file_urls=True), key=lambda r: r.tile.index)
    assert got[0].ok and got[0].data == local.read_bytes()
    assert not got[1].ok and got[1].error == "no such file" and got[1].attempts == 1


def test_retry_after_pauses_every_tile(site) -> None:
    """A 429's Retry-After holds back the requests of other tiles too, not only the retry."""
    srv, _ = site
    options = net.NetOptions(parallelism=2, retries=1, retry_delay=0.05, min_interval=0)
    paths = ["m/fail=1,status=429,retry_after=1/a.png", "m/delay=0.2/b.png", "c.png"]
    assert all(r.ok for r in download(srv, paths, options))
    arrivals = {r["path"]: r["time"] for r in reversed(srv.requests())}  # first arrival of each path
    assert arrivals["/c.png"] - arrivals["/" + paths[0]] >= 0.95


def test_tls_errors_are_one_line_and_accept_invalid_certs_works(tmp_path: Path, fault_server, recwarn) -> None:  # noqa: F811
    root = tmp_path / "tls-site"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes((1, 1, 1)))
    srv = fault_server(root, tls=True)
    url = srv.url("a.png")
    with pytest.raises(NetworkError) as err:
        net.fetch_document(url, net.NetOptions(retries=0, min_interval=0))
    message = str(err.value)
    assert message.startswith(f"{url}: TLS error with 127.0.0.1: its certificate is self-signed")
    assert "--insecure-host 127.0.0.1" in message and "\n" not in message
    assert srv.requests() == []  # the handshake failed: no request reached the server
    insecure = net.NetOptions(retries=0, min_interval=0, accept_invalid_certs=True)
    assert net.fetch_document(url, insecure) == (root / "a.png").read_bytes()
    assert not [w for w in recwarn if "Unverified HTTPS" in str(w.message)]


def test_tiles_go_through_the_proxy_of_the_environment(site, monkeypatch: pytest.MonkeyPatch) -> None:
    """http_proxy from the environment carries tile requests (libcurl transport), NO_PROXY exempts hosts."""
    srv, files = site
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", srv.url("").rstrip("/"))
    # A host that resolves nowhere: only a proxy can answer for it (the fault server serves its files
    # whatever host an absolute request URI names).
    tiles = [tile(0, "http://tiles.example.invalid/a.png"), tile(1, "http://tiles.example.invalid/b.png")]
    got = sorted(tiledownload.download_tiles(tiles, FAST, {}), key=lambda r: r.tile.index)
    assert [r.data for r in got] == [files["a.png"], files["b.png"]]
    assert {r["path"] for r in srv.requests()} == {"http://tiles.example.invalid/a.png",
                                                   "http://tiles.example.invalid/b.png"}
    monkeypatch.setenv("no_proxy", "tiles.example.invalid")
    (direct,) = tiledownload.download_tiles([tile(2, "http://tiles.example.invalid/c.png")], FAST, {})
    assert not direct.ok and direct.error.startswith("connection failed")
    assert len(srv.requests()) == 2
