"""Authentication helpers: header scope, cookies.txt, inherited query tokens, secret references, redaction.

Two real fault servers over the same files, one on 127.0.0.1 (the input's host) and one on
127.0.0.2 (another host, e.g. a tile CDN): their request logs say which headers and cookies
reached which host. Field notes §1 row 2, §2 N1, §5 S6, S12; issue 6 "Authentication helpers".
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dezoom_steps import cache, jsonio, net, redact, scope
from dezoom_steps.errors import InputError, NetworkError
from dezoom_steps.steps.fetch_tiles import fetch_tiles
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)

REPO = Path(__file__).resolve().parent.parent
COLS, ROWS, TILE = 2, 2, 40
OTHER_HOST = "127.0.0.2"  # loopback too (the address policy allows it), but another host name
TOKEN = "t0k3n-7f3a9c"  # a secret header value
FAST: dict[str, Any] = {"parallelism": 2, "retries": 0, "min_interval": 0, "timeout": 5}


def png(color: tuple[int, int, int]) -> bytes:
    """A small PNG tile of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", (TILE, TILE), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def hosts(tmp_path: Path, fault_server):  # noqa: F811
    """(input host server on 127.0.0.1, other host server on 127.0.0.2), both serving site/."""
    site = tmp_path / "site"
    (site / "demo").mkdir(parents=True)
    for i in range(COLS * ROWS):
        (site / "demo" / f"{i}.png").write_bytes(png((60 * i, 30, 200)))
    (site / "meta.json").write_text("{}")
    return fault_server(site), fault_server(site, host=OTHER_HOST)


def write_tiles(path: Path, input_url: str, urls: list[str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A tiles.json for a 2x2 grid whose tile URLs are `urls` (and level `headers`)."""
    tiles = [{"index": i, "col": i % COLS, "row": i // COLS, "url": u, "x": i % COLS * TILE, "y": i // COLS * TILE,
              "w": TILE, "h": TILE, "crop_x": 0, "crop_y": 0, "key": cache.cache_key(u)} for i, u in enumerate(urls)]
    return jsonio.write_step_json(path, "tiles", {
        "image": "t", "input_url": input_url, "dezoomer": "zoomify", "title": None, "headers": headers or {},
        "selection": {"rule": "largest", "level_index": 0},
        "level": {"width": COLS * TILE, "height": ROWS * TILE, "tile_width": TILE, "tile_height": TILE},
        "canvas": {"width": COLS * TILE, "height": ROWS * TILE},
        "estimates": {"tiles": len(urls), "pixels": 1, "raw_bytes": 1}, "tiles": tiles})


def fetch(tmp_path: Path, recorded_input: str, urls: list[str], **options: Any) -> dict[str, Any]:
    """Run the fetch_tiles step over `urls` (tiles.json input_url: `recorded_input`); returns its report."""
    write_tiles(tmp_path / "tiles.json", recorded_input, urls)
    return fetch_tiles(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "cache",
                       report=tmp_path / "fetch.json", options=net.NetOptions(**{**FAST, **options}))


def header(request: dict[str, Any], name: str) -> str | None:
    """A request header as the server logged it (case-insensitive name)."""
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def tile_requests(srv) -> list[dict[str, Any]]:  # noqa: ANN001
    """The server's logged requests for tiles."""
    return [r for r in srv.requests() if "/demo/" in r["path"]]


# --- 1. header scope --------------------------------------------------------------------------

def test_user_headers_go_to_the_input_host_only(tmp_path: Path, hosts, caplog) -> None:
    here, other = hosts
    input_url = here.url("meta.json?view=1")
    urls = [here.url("demo/0.png"), here.url("demo/1.png"), other.url("demo/2.png"), other.url("demo/3.png")]
    with caplog.at_level(logging.WARNING):
        report = fetch(tmp_path, input_url, urls, headers={"X-Museum-Token": TOKEN, "Authorization": "Bearer b-123456",
                                                           "User-Agent": "dezoom-test/1"})
    assert report["failed"] == [] and report["downloaded"] == 4
    for r in tile_requests(here):
        assert header(r, "X-Museum-Token") == TOKEN and header(r, "Authorization") == "Bearer b-123456"
        assert r["referer"] == input_url  # same origin: the whole input URL
    for r in tile_requests(other):
        assert header(r, "X-Museum-Token") is None and header(r, "Authorization") is None
        assert r["referer"] == here.url("meta.json")  # another origin: the Referer without its query
        assert r["user_agent"] == "dezoom-test/1"  # User-Agent, Referer, Accept*: not credentials, everywhere
        assert r["accept_language"] == net.DEFAULT_HEADERS["Accept-Language"]  # the defaults go everywhere
    warnings = [m for m in caplog.messages if "tiles come from" in m]
    assert len(warnings) == 1 and OTHER_HOST in warnings[0] and f"--header-host {OTHER_HOST}" in warnings[0]


def test_a_user_referer_goes_to_every_host(tmp_path: Path, hosts) -> None:
    """-H Referer replaces the default Referer everywhere (tile CDNs check it; it is no credential)."""
    here, other = hosts
    fetch(tmp_path, here.url("meta.json"), [here.url("demo/0.png"), other.url("demo/1.png")],
          headers={"Referer": "https://museum.example/viewer?id=5"})
    assert {r["referer"] for r in tile_requests(here) + tile_requests(other)} == {"https://museum.example/viewer?id=5"}


@pytest.mark.parametrize("listed", [OTHER_HOST, "*"])
def test_header_host_extends_the_scope(tmp_path: Path, hosts, listed: str) -> None:
    here, other = hosts
    fetch(tmp_path, here.url("meta.json"), [other.url(f"demo/{i}.png") for i in range(4)],
          headers={"X-Museum-Token": TOKEN}, header_hosts=(listed,))
    assert [header(r, "X-Museum-Token") for r in tile_requests(other)] == [TOKEN] * 4


def test_cross_origin_redirect_keeps_plain_headers_and_drops_credentials(tmp_path: Path, hosts) -> None:
    """Field notes N1 + S6: user headers survive a redirect, credentials do not leave for another host."""
    here, other = hosts
    user = {"Cookie": "session=c00kie-v", "Authorization": "Basic dXNlcjpwYXNz", "X-Api-Key": "k3y-4567",
            "X-Requested-With": "dezoom-test", "Accept-Language": "fr"}
    hop = f"m/goto={other.port},gohost={OTHER_HOST}/demo/0.png"
    fetch(tmp_path, here.url("meta.json"), [here.url(hop)] + [here.url(f"demo/{i}.png") for i in (1, 2, 3)],
          headers=user)
    (first,) = [r for r in here.requests() if r["path"] == "/" + hop]
    assert first["status"] == 302 and header(first, "X-Api-Key") == "k3y-4567" and first["cookie"] == "session=c00kie-v"
    (landed,) = tile_requests(other)
    assert landed["status"] == 200
    assert header(landed, "Cookie") is None and header(landed, "Authorization") is None
    assert header(landed, "X-Api-Key") is None  # secret-looking name: dropped too
    # Not credentials: kept across the redirect (N1); only the input's host gets user headers at
    # first, but a header the user sent to this request stays with it when it is not secret.
    assert header(landed, "X-Requested-With") == "dezoom-test" and header(landed, "Accept-Language") == "fr"
    assert landed["referer"] == here.url("meta.json")
    # With the target host in scope, credentials follow the redirect.
    tmp2 = tmp_path / "in-scope"
    tmp2.mkdir()
    fetch(tmp2, here.url("meta.json"), [here.url(hop.replace("0.png", "1.png"))], headers=user,
          header_hosts=(OTHER_HOST,))
    (scoped,) = [r for r in tile_requests(other) if r["path"].endswith("1.png")]
    assert scoped["cookie"] == "session=c00kie-v" and header(scoped, "Authorization") == "Basic dXNlcjpwYXNz"


def test_hop_headers_rules() -> None:
    """The pure rule behind the cases above, on hosts that are never contacted."""
    sc = scope.HeaderScope("https://museum.example/iiif/info.json?token=abc", ("*.cdn.example",))
    base = {"User-Agent": "ua", "Referer": "https://museum.example/iiif/info.json?token=abc", "X-Token": "s3cr3t"}
    user = {"x-token": "s3cr3t"}
    same = scope.hop_headers(base, "https://museum.example/t/1.jpg", first_url="https://museum.example/t/1.jpg",
                             scope=sc, user=user)
    assert same == base
    cdn = scope.hop_headers(base, "https://a.cdn.example/1.jpg", first_url="https://a.cdn.example/1.jpg", scope=sc,
                            user=user)
    assert cdn["X-Token"] == "s3cr3t" and cdn["Referer"] == "https://museum.example/iiif/info.json"
    away = scope.hop_headers(base, "https://evil.example/1.jpg", first_url="https://museum.example/1.jpg", scope=sc,
                             user=user, jar_cookie="a=1")
    assert away == {"User-Agent": "ua", "Referer": "https://museum.example/iiif/info.json", "Cookie": "a=1"}


# --- 2. cookies.txt ---------------------------------------------------------------------------

def cookies_file(path: Path, lines: list[str]) -> str:
    """Write a Netscape cookies.txt with the given tab-separated lines."""
    path.write_text("# Netscape HTTP Cookie File\n" + "\n".join(lines) + "\n")
    return str(path)


def test_each_request_gets_exactly_its_cookies(tmp_path: Path, hosts) -> None:
    here, other = hosts
    jar = cookies_file(tmp_path / "cookies.txt", [
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tsess-1111",
        "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t4102444800\thttponly\tho-2222",
        "127.0.0.1\tFALSE\t/demo/\tFALSE\t0\tpathonly\tpath-3333",
        "127.0.0.1\tFALSE\t/elsewhere/\tFALSE\t0\tnotpath\tnp-4444",
        "127.0.0.1\tFALSE\t/\tTRUE\t0\tsecureonly\tsec-5555",
        "127.0.0.1\tFALSE\t/\tFALSE\t1000000000\texpired\texp-6666",
        f"{OTHER_HOST}\tFALSE\t/\tFALSE\t0\tcdn\tcdn-7777",
        ".example.org\tTRUE\t/\tFALSE\t0\tfar\tfar-8888",
    ])
    urls = [here.url("demo/0.png"), here.url("demo/1.png"), other.url("demo/2.png"), other.url("demo/3.png")]
    report = fetch(tmp_path, here.url("meta.json"), urls, cookies_file=jar, headers={"Cookie": "given=by-h"})
    assert report["failed"] == []
    for r in tile_requests(here):
        # -H Cookie (input host) merged with the jar's matching cookies, most specific path first
        assert r["cookie"] == "given=by-h; pathonly=path-3333; session=sess-1111; httponly=ho-2222", r
    for r in tile_requests(other):
        assert r["cookie"] == "cdn=cdn-7777", r  # its own cookie only; the -H Cookie stays on the input host


def test_a_cookie_protected_document(tmp_path: Path, hosts) -> None:
    here, _ = hosts
    jar = cookies_file(tmp_path / "c.txt", ["127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\topen-sesame"])
    url = here.url("m/need_cookie=open-sesame/meta.json")
    with pytest.raises(NetworkError, match="403"):
        net.fetch_document(url, net.NetOptions(**FAST))
    assert net.fetch_document(url, net.NetOptions(**FAST, cookies_file=jar)) == b"{}"


@pytest.mark.parametrize("content,problem", [
    ("127.0.0.1\tFALSE\t/\n", "line 1 is not a Netscape cookies.txt line"),
    ("127.0.0.1\tMAYBE\t/\tFALSE\t0\ta\tb\n", "line 1: bad domain or TRUE/FALSE flag"),
    ("127.0.0.1\tFALSE\t/\tFALSE\tsoon\ta\tb\n", "the expiry 'soon' is not a number"),
])
def test_bad_cookies_file_is_one_input_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        net.HttpClient(net.NetOptions(cookies_file=str(path)))
    assert str(err.value).startswith(str(path)) and problem in str(err.value)
    with pytest.raises(InputError, match="no such cookies file"):
        net.HttpClient(net.NetOptions(cookies_file=str(tmp_path / "missing.txt")))


# --- 3. --inherit-query -----------------------------------------------------------------------

def test_inherit_query_adds_the_token_at_request_time_only(tmp_path: Path, hosts) -> None:
    here, other = hosts
    input_url = here.url("meta.json?securitytoken=sek-9999&lang=en")
    urls = [here.url("demo/0.png"), here.url("demo/1.png?lang=fr"), other.url("demo/2.png"), other.url("demo/3.png")]
    fetch(tmp_path, input_url, urls, inherit_query=True, input_url=input_url)  # input_url: what --input-url gives
    paths = sorted(r["path"] for r in tile_requests(here))
    assert paths == ["/demo/0.png?securitytoken=sek-9999&lang=en", "/demo/1.png?lang=fr&securitytoken=sek-9999"]
    assert sorted(r["path"] for r in tile_requests(other)) == ["/demo/2.png", "/demo/3.png"]  # another host: no token
    written = (tmp_path / "tiles.json").read_text() + (tmp_path / "fetch.json").read_text()
    assert "sek-9999" not in written
    doc = json.loads((tmp_path / "tiles.json").read_text())
    assert [t["key"] for t in doc["tiles"]] == [cache.cache_key(u) for u in urls]  # keys of token-free URLs


def test_a_token_from_the_server_is_request_data(tmp_path: Path, hosts) -> None:
    """Signed tile URLs written by the server (not the user's token) stay usable in tiles.json."""
    here, _ = hosts
    urls = [here.url(f"demo/{i}.png?sig=server-sig-{i}abc") for i in range(4)]
    report = fetch(tmp_path, here.url("meta.json"), urls)
    assert report["failed"] == [] and "server-sig-0abc" in (tmp_path / "tiles.json").read_text()
    assert redact.redact_text(urls[0]).endswith("?sig=REDACTED")  # but never in a log line


def test_inherit_query_off_by_default_and_never_sends_a_placeholder(tmp_path: Path, hosts) -> None:
    here, _ = hosts
    fetch(tmp_path, here.url("meta.json?securitytoken=sek-9999"), [here.url(f"demo/{i}.png") for i in range(4)])
    assert all("?" not in r["path"] for r in tile_requests(here))
    # Without --input-url the step only knows the redacted input: the redacted parameter is not sent.
    fetch(tmp_path / "x", here.url("meta.json?securitytoken=sek-9999&lang=en"), [here.url("demo/0.png?v=2")],
          inherit_query=True)
    assert tile_requests(here)[-1]["path"] == "/demo/0.png?v=2&lang=en"


def test_redacted_step_urls_are_restored_from_the_real_input(tmp_path: Path, hosts) -> None:
    """A tile URL carrying the input's token is written redacted and requested with the real value."""
    here, _ = hosts
    real = here.url("meta.json?token=tok-1234abcd")
    urls = [here.url(f"demo/{i}.png?token=tok-1234abcd") for i in range(4)]
    write_tiles(tmp_path / "tiles.json", real, urls)
    text = (tmp_path / "tiles.json").read_text()
    assert "tok-1234abcd" not in text and "token=REDACTED" in text
    fetch_tiles(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "cache", report=tmp_path / "fetch.json",
                options=net.NetOptions(**FAST, input_url=real))
    assert sorted(r["path"] for r in tile_requests(here)) == [f"/demo/{i}.png?token=tok-1234abcd" for i in range(4)]


# --- 4. secrets from the environment or files -------------------------------------------------

def test_secret_references(tmp_path: Path, hosts, monkeypatch) -> None:
    here, _ = hosts
    monkeypatch.setenv("MUSEUM_TOKEN", "env-secret-4242")
    secret_file = tmp_path / "key.txt"
    secret_file.write_text("file-secret-5353\nsecond line ignored\n")
    fetch(tmp_path, here.url("meta.json"), [here.url(f"demo/{i}.png") for i in range(4)],
          headers={"Authorization": "@env:MUSEUM_TOKEN", "X-Key": f"@file:{secret_file}"})
    for r in tile_requests(here):
        assert header(r, "Authorization") == "env-secret-4242" and header(r, "X-Key") == "file-secret-5353"
    assert redact.redact_text("log: env-secret-4242 and file-secret-5353") == "log: REDACTED and REDACTED"


def test_level_headers_may_hold_references(tmp_path: Path, hosts, monkeypatch) -> None:
    """A custom tiles.yaml's headers end up in tiles.json as references, resolved by the fetch step."""
    here, _ = hosts
    monkeypatch.setenv("LEVEL_SECRET", "level-secret-6464")
    input_ref = here.url("viewer.html?sessionid=sid-777")  # the input (a viewer page), also the Referer
    write_tiles(tmp_path / "tiles.json", input_ref, [here.url(f"demo/{i}.png") for i in range(4)],
                headers={"X-Level-Key": "@env:LEVEL_SECRET", "Cookie": "session=lit-2", "Referer": input_ref})
    fetch_tiles(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "cache", report=tmp_path / "fetch.json",
                options=net.NetOptions(**FAST, input_url=input_ref))
    assert [header(r, "X-Level-Key") for r in tile_requests(here)] == ["level-secret-6464"] * 4
    assert [r["referer"] for r in tile_requests(here)] == [input_ref] * 4  # restored from the real input
    assert [r["cookie"] for r in tile_requests(here)] == ["session=lit-2"] * 4  # written and sent as given
    text = (tmp_path / "tiles.json").read_text()
    assert "level-secret-6464" not in text and "sid-777" not in text and "@env:LEVEL_SECRET" in text


def test_missing_secret_is_an_input_error_naming_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    with pytest.raises(InputError, match="environment variable NO_SUCH_TOKEN_VAR is not set"):
        net.HttpClient(net.NetOptions(headers={"Authorization": "@env:NO_SUCH_TOKEN_VAR"}))
    with pytest.raises(InputError, match="cannot read the secret file .*nope.txt"):
        net.HttpClient(net.NetOptions(headers={"X-Key": f"@file:{tmp_path / 'nope.txt'}"}))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="is empty"):
        net.HttpClient(net.NetOptions(headers={"X-Key": f"@file:{tmp_path / 'empty.txt'}"}))


# --- 5. redaction -----------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("https://x.org/info.json?securitytoken=abc&w=1", "https://x.org/info.json?securitytoken=REDACTED&w=1"),
    ("https://cdn.x/t.jpg?Policy=p1&Signature=s1&Key-Pair-Id=k1&size=2",
     "https://cdn.x/t.jpg?Policy=REDACTED&Signature=REDACTED&Key-Pair-Id=REDACTED&size=2"),
    ("https://s3.x/a?X-Amz-Credential=c&X-Amz-Signature=s&X-Amz-Date=d",
     "https://s3.x/a?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Date=d"),
    ("https://user:pa55@x.org/a?sig=1&api_key=2&session=3", "https://REDACTED@x.org/a?sig=REDACTED&api_key=REDACTED&session=REDACTED"),
    ("failed with url: /a.png?token=zz (Caused by ...)", "failed with url: /a.png?token=REDACTED (Caused by ...)"),
    ("Cookie: a=1; b=2", "Cookie: REDACTED"), ('{"Authorization": "Bearer x"}', '{"Authorization": "REDACTED"}'),
    ("https://x.org/a?page=2&author=me", "https://x.org/a?page=2&author=me"),
    ("/m/fail=1,need_cookie=abc/a.png", "/m/fail=1,need_cookie=abc/a.png"),
])
def test_redact_text(text: str, expected: str) -> None:
    assert redact.redact_text(text) == expected


def test_log_lines_and_error_lines_are_redacted(tmp_path: Path, hosts) -> None:
    """The real CLI: a failing download whose URL and headers hold secrets prints none of them."""
    here, _ = hosts
    env = dict(os.environ, PYTHONPATH=str(REPO), HIDDEN_TOKEN="hidden-7777")
    url = here.url("m/fail=5,status=500/meta.json?token=qtok-8888")
    proc = subprocess.run([sys.executable, "-m", "dezoom_steps", url, "out.png", "--retries", "1", "--retry-delay",
                           "0", "-H", "Authorization: @env:HIDDEN_TOKEN", "--logging", "debug"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    out = proc.stdout + proc.stderr
    assert "qtok-8888" not in out and "hidden-7777" not in out and "token=REDACTED" in out
    assert header(here.requests()[0], "Authorization") == "hidden-7777"  # what was sent was the real value


# --- 8. size caps -----------------------------------------------------------------------------

def test_document_and_tile_caps(tmp_path: Path, hosts) -> None:
    here, _ = hosts
    (here.root / "big.json").write_bytes(b" " * 5000)
    with pytest.raises(NetworkError) as err:
        net.fetch_document(here.url("big.json"), net.NetOptions(**FAST, max_document_bytes=4096))
    line = str(err.value)
    assert line.startswith(here.url("big.json")) and "4096" in line and "--max-document-bytes" in line
    assert net.NetOptions().max_document_bytes == 4 * 1024 * 1024 and net.NetOptions().max_tile_bytes == 64 * 1024 * 1024
    report = fetch(tmp_path, here.url("meta.json"), [here.url(f"demo/{i}.png") for i in range(4)], max_tile_bytes=100)
    assert len(report["failed"]) == 4
    assert all("100 bytes" in f["error"] and "--max-tile-bytes" in f["error"] for f in report["failed"])
    assert not any((tmp_path / "cache").rglob("*.png")), "nothing over the cap enters the cache"


def test_size_flags() -> None:
    from dezoom_steps.netargs import parse_size

    assert parse_size("4MiB") == parse_size("4M") == 4 * 1024 * 1024 and parse_size("500kB") == 500_000
    assert parse_size("123") == 123
    for bad in ("", "0", "-1", "4 parsecs"):
        with pytest.raises(InputError):
            parse_size(bad)


# --- 5. a whole Snakemake workflow: no secret in any file it writes ---------------------------

def test_workflow_writes_no_secret(tmp_path: Path, fault_server) -> None:  # noqa: F811
    """-H with @env:, cookies.txt and a query token: the run works and no file under work/, results/,
    logs/ or .snakemake/log holds any of the secret values (field notes S6, S12)."""
    import shutil

    import yaml

    from cli_support import DEMO, assert_matches_source

    site = tmp_path / "site"
    shutil.copytree(DEMO, site / "demo")
    srv = fault_server(site)
    cookie, query, env_secret = "ck-secret-1111", "qs-secret-2222", "env-secret-3333"
    # need_cookie=abc: every request of this path (metadata and tiles) is refused without the cookie
    # session=abc (part of the URL: no secret); the jar's second cookie is the secret to look for.
    url = srv.url(f"m/need_cookie=abc/demo/demo.dzi?securitytoken={query}")
    run = tmp_path / "run"
    run.mkdir()
    jar = cookies_file(run / "cookies.txt", ["127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc",
                                             f"127.0.0.1\tFALSE\t/\tFALSE\t0\tlogin\t{cookie}"])
    (run / "config.yaml").write_text(yaml.safe_dump({
        "url": url, "output": "secret_demo.png", "headers": ["Authorization: @env:MUSEUM_TOKEN"],
        "cookies": jar, "min_interval": "0s", "retries": 0}))
    env = dict(os.environ, MUSEUM_TOKEN=env_secret, XDG_CACHE_HOME=str(run / ".xdg-cache"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(run), "--cores", "2", "--configfile", str(run / "config.yaml")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_matches_source(run / "results" / "secret_demo.png")
    tiles = [r for r in srv.requests() if "_files/" in r["path"]]
    assert len(tiles) == 20 and all(header(r, "Authorization") == env_secret for r in tiles)
    assert all(r["cookie"] == f"session=abc; login={cookie}" for r in tiles)
    assert all(r["path"].endswith(f"?securitytoken={query}") for r in tiles)  # restored from --input-url
    written = [p for d in ("work", "results", "logs", ".snakemake/log") for p in (run / d).rglob("*") if p.is_file()]
    assert any(p.name == "resolve.json" for p in written) and any(p.suffix == ".log" for p in written)
    leaks = {str(p.relative_to(run)): s for p in written for s in (query, env_secret, cookie)
             if s.encode() in p.read_bytes()}
    assert leaks == {}, f"secrets found in written files: {leaks}"
    sidecar = json.loads((run / "results" / "secret_demo.png.json").read_text())
    assert "securitytoken=REDACTED" in sidecar["source"]


def test_config_keys_reach_the_step_flags() -> None:
    """config/schema.yaml keys -> plan.net_args -> the flags netargs parses back into NetOptions."""
    import argparse
    import shlex

    import yaml

    from dezoom_steps import plan
    from dezoom_steps.netargs import add_net_arguments, net_options

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    config = {k: v.get("default") for k, v in schema.items()}
    config.update(header_hosts=["cdn.example", "*.museum.example"], cookies="cookies.txt", inherit_query=True,
                  insecure_hosts=["old.example"], ca_bundle=__file__, allow_private_networks=True,
                  max_document_bytes=1000, max_tile_bytes=2000, headers=["Authorization: @env:MUSEUM_TOKEN"])
    parser = argparse.ArgumentParser()
    add_net_arguments(parser)
    args = shlex.split(plan.net_args(config, "https://museum.example/info.json?token=abc"))
    assert "@env:MUSEUM_TOKEN" in " ".join(args)  # the reference, never the value, on the command line
    opts = net_options(parser.parse_args(args))
    assert opts.header_hosts == ("cdn.example", "*.museum.example") and opts.cookies_file == "cookies.txt"
    assert opts.inherit_query and opts.allow_private_networks and opts.insecure_hosts == ("old.example",)
    assert (opts.ca_bundle, opts.max_document_bytes, opts.max_tile_bytes) == (__file__, 1000, 2000)
    assert opts.input_url == "https://museum.example/info.json?token=abc"
    defaults = net_options(parser.parse_args(shlex.split(plan.net_args({k: v.get("default") for k, v in schema.items()}))))
    assert defaults.header_hosts == () and not defaults.inherit_query and not defaults.allow_private_networks
    assert defaults.max_document_bytes == 4 * 1024 * 1024 and defaults.max_tile_bytes == 64 * 1024 * 1024
