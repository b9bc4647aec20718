"""The `dezoom` command line end to end, run as a subprocess (`python -m dezoom_steps`).

Inputs are the embedded demo (examples/demo, a DeepZoom pyramid of source.png) read from disk,
or a copy of it served by the project's fault server on 127.0.0.1, whose access log tells
exactly which requests the command made and with which headers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_support import (
    DEMO_DZI, DEMO_SIZE, DEMO_TILE, EXIT, JPEG_NOISE, assert_left_nothing, assert_matches_source,
    assert_one_line_error, demo_levels, demo_tile_paths, image_size, mean_abs_diff, pixels, request_paths,
    run_dezoom, serve_demo_copy, tile_request_paths,
)
from dezoom_steps import __version__
from dezoom_steps.cache import cache_key, tile_path
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)

FAST = ("-i", "0")  # no minimum interval between requests: the server is local


@pytest.fixture
def demo_server(fault_server, tmp_path: Path):  # noqa: F811
    """A fault server over a copy of the demo pyramid in tmp_path/site/demo."""
    site = tmp_path / "site"
    serve_demo_copy(site)
    return fault_server(site)


# --- output: pixels, names, never overwriting -----------------------------------------------

def test_demo_to_png_equals_source(tmp_path: Path) -> None:
    """The demo downloaded to PNG is source.png up to JPEG noise; the sidecar describes it."""
    run = tmp_path / "run"
    result = run_dezoom(run, str(DEMO_DZI), "out.png")
    assert result.code == 0, result.describe()
    assert result.stderr == "", result.describe()
    assert "out.png" in result.stdout
    assert_matches_source(run / "out.png")
    sidecar = json.loads((run / "out.png.json").read_text())
    assert sidecar["complete"] is True and sidecar["missing_tiles"] == []
    assert (sidecar["width"], sidecar["height"]) == DEMO_SIZE
    assert sidecar["bytes"] == (run / "out.png").stat().st_size
    assert_left_nothing(run, {"out.png", "out.png.json"})
    assert_left_nothing(tmp_path / "run.tmp")


def test_default_name_from_title_never_overwrites(tmp_path: Path) -> None:
    """Without OUTFILE: demo.jpg (title of the DZI), then demo_0001.jpg; the first is left as it was."""
    run = tmp_path / "run"
    first = run_dezoom(run, str(DEMO_DZI))
    assert first.code == 0, first.describe()
    assert_left_nothing(run, {"demo.jpg", "demo.jpg.json"})
    before = (run / "demo.jpg").read_bytes()
    second = run_dezoom(run, str(DEMO_DZI))
    assert second.code == 0, second.describe()
    assert_left_nothing(run, {"demo.jpg", "demo.jpg.json", "demo_0001.jpg", "demo_0001.jpg.json"})
    assert (run / "demo.jpg").read_bytes() == before
    for name in ("demo.jpg", "demo_0001.jpg"):
        assert_matches_source(run / name)


def test_existing_outfile_is_refused(demo_server, tmp_path: Path) -> None:
    """An existing OUTFILE: exit 5 naming it, left byte-identical, no sidecar, not one tile fetched."""
    run = tmp_path / "run"
    run.mkdir()
    content = b"precious bytes, not a PNG\n"
    (run / "out.png").write_bytes(content)
    result = run_dezoom(run, demo_server.url("demo/demo.dzi"), "out.png")
    assert_one_line_error(result, EXIT["output"], "out.png")
    assert (run / "out.png").read_bytes() == content
    assert_left_nothing(run, {"out.png"})
    assert tile_request_paths(demo_server) == []


def test_file_url_and_plain_path_give_the_same_image(tmp_path: Path) -> None:
    """A file:// URL works like the plain path of the same document."""
    run = tmp_path / "run"
    by_path = run_dezoom(run, str(DEMO_DZI), "by-path.png")
    by_url = run_dezoom(run, DEMO_DZI.as_uri(), "by-url.png")
    assert by_path.code == 0, by_path.describe()
    assert by_url.code == 0, by_url.describe()
    assert_matches_source(run / "by-url.png")
    assert np.array_equal(pixels(run / "by-path.png"), pixels(run / "by-url.png"))


# --- level choice ---------------------------------------------------------------------------

LEVELS = demo_levels()  # smallest first: (1, 1) ... (1200, 800)
LEVEL_CASES = {
    # flags -> the level expected, computed from the ceil-halvings of 1200x800
    "max-width 700": (("-w", "700"), max((s for s in LEVELS if s[0] <= 700), key=lambda s: s[0])),
    "max-width 1199": (("-w", "1199"), max((s for s in LEVELS if s[0] <= 1199), key=lambda s: s[0])),
    "max-height 250": (("-h", "250"), max((s for s in LEVELS if s[1] <= 250), key=lambda s: s[1])),
    "both limits": (("-w", "1000", "-h", "150"),
                    max((s for s in LEVELS if s[0] <= 1000 and s[1] <= 150), key=lambda s: s[0])),
    "width exactly": (("-w", "1200"), LEVELS[-1]),
    "zoom-level 0": (("--zoom-level", "0"), LEVELS[0]),
    "zoom-level 7": (("--zoom-level", "7"), LEVELS[7]),
    "zoom-level top": (("--zoom-level", str(len(LEVELS) - 1)), LEVELS[-1]),
    "largest": (("-l",), LEVELS[-1]),
}


@pytest.mark.parametrize("case", sorted(LEVEL_CASES))
def test_level_selection(tmp_path: Path, case: str) -> None:
    """-w / -h / --zoom-level / -l pick the expected DeepZoom level (checked by output size)."""
    flags, expected = LEVEL_CASES[case]
    run = tmp_path / "run"
    result = run_dezoom(run, str(DEMO_DZI), "out.png", *flags)
    assert result.code == 0, result.describe()
    assert image_size(run / "out.png") == expected, result.describe()


def test_level_pixels_are_the_pyramid_level(tmp_path: Path) -> None:
    """A smaller level's pixels are the source scaled down (not a crop of the largest level)."""
    from PIL import Image

    run = tmp_path / "run"
    result = run_dezoom(run, str(DEMO_DZI), "half.png", "-w", "600")
    assert result.code == 0, result.describe()
    with Image.open(DEMO_DZI.parent / "source.png") as src:
        want = np.asarray(src.convert("RGB").resize((600, 400), Image.LANCZOS)).astype(np.int16)
    assert mean_abs_diff(pixels(run / "half.png"), want) < 2 * JPEG_NOISE


# --- tile cache -----------------------------------------------------------------------------

def test_tile_cache_rerun_fetches_only_missing_tiles(demo_server, tmp_path: Path) -> None:
    """-c DIR: a rerun fetches no tile; after deleting some cached tiles, exactly those are fetched."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    url = demo_server.url("demo/demo.dzi")
    tiles = demo_tile_paths()

    first = run_dezoom(run, url, "one.png", "-c", str(cache), *FAST)
    assert first.code == 0, first.describe()
    assert sorted(tile_request_paths(demo_server)) == sorted(tiles)
    for path in tiles:
        assert tile_path(cache, cache_key(demo_server.url(path))).is_file(), f"{path} not cached"

    seen = len(demo_server.requests())
    second = run_dezoom(run, url, "two.png", "-c", str(cache), *FAST)
    assert second.code == 0, second.describe()
    again = [p for p in request_paths(demo_server)[seen:] if p in tiles]
    assert again == [], f"a rerun with a full cache fetched {again}"

    dropped = tiles[::7]  # a few tiles, spread over the grid
    for path in dropped:
        tile_path(cache, cache_key(demo_server.url(path))).unlink()
    seen = len(demo_server.requests())
    third = run_dezoom(run, url, "three.png", "-c", str(cache), *FAST)
    assert third.code == 0, third.describe()
    refetched = [p for p in request_paths(demo_server)[seen:] if p in tiles]
    assert sorted(refetched) == sorted(dropped)
    for name in ("one.png", "two.png", "three.png"):
        assert_matches_source(run / name)


# --- headers --------------------------------------------------------------------------------

def test_header_is_sent_with_every_request(fault_server, tmp_path: Path) -> None:  # noqa: F811
    """-H 'Cookie: ...' opens a cookie-protected image; -H 'Referer: ...' replaces the default Referer."""
    site = tmp_path / "site"
    serve_demo_copy(site)
    srv = fault_server(site)
    url = srv.url("m/need_cookie=s3cret/demo/demo.dzi")
    viewer = "http://viewer.invalid/page"
    result = run_dezoom(tmp_path / "run", url, "out.png", "-H", "Cookie: session=s3cret",
                        "-H", f"Referer: {viewer}", *FAST)
    assert result.code == 0, result.describe()
    assert_matches_source(tmp_path / "run" / "out.png")
    log = srv.requests()
    assert len(log) == 1 + len(demo_tile_paths())
    assert all(r["status"] == 200 for r in log), [r for r in log if r["status"] != 200]
    assert all("session=s3cret" in (r["cookie"] or "") for r in log)
    assert all(r["referer"] == viewer for r in log)


def test_without_the_needed_header_the_metadata_is_refused(fault_server, tmp_path: Path) -> None:  # noqa: F811
    """The same protected image without the cookie: exit 4, one line naming the URL."""
    site = tmp_path / "site"
    serve_demo_copy(site)
    srv = fault_server(site)
    url = srv.url("m/need_cookie=s3cret/demo/demo.dzi")
    result = run_dezoom(tmp_path / "run", url, "out.png", "-r", "0")
    assert_one_line_error(result, EXIT["network"], url)
    assert_left_nothing(tmp_path / "run")


@pytest.mark.parametrize("header", ["no colon here", ": empty name", "https://example.org/viewer",
                                    "Bad Name: value"])
def test_malformed_header(tmp_path: Path, header: str) -> None:
    """A malformed -H: exit 2, one line quoting it, nothing written."""
    result = run_dezoom(tmp_path / "run", str(DEMO_DZI), "out.png", "-H", header)
    assert_one_line_error(result, EXIT["input"], header)
    assert_left_nothing(tmp_path / "run")


# --- help and version -----------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--help", "-?"])
def test_help(tmp_path: Path, flag: str) -> None:
    """--help and -? print the usage (with the flags and exit codes) and exit 0."""
    result = run_dezoom(tmp_path / "run", flag)
    assert result.code == 0, result.describe()
    assert result.stdout.startswith("usage: dezoom"), result.describe()
    for text in ("--max-width", "--tile-cache", "--header", "Exit codes"):
        assert text in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(tmp_path: Path, flag: str) -> None:
    """-V prints `dezoom <version>` and exits 0."""
    result = run_dezoom(tmp_path / "run", flag)
    assert result.code == 0, result.describe()
    assert result.stdout.strip() == f"dezoom {__version__}"


# --- retries, partial downloads, query strings ----------------------------------------------

def test_retries_recover_from_503(demo_server, tmp_path: Path) -> None:
    """Every first request answered 503: -r 1 --retry-delay 10ms completes with the right pixels."""
    url = demo_server.url("m/fail=1,status=503,retry_after=0/demo/demo.dzi")
    result = run_dezoom(tmp_path / "run", url, "out.png", "-r", "1", "--retry-delay", "10ms", *FAST)
    assert result.code == 0, result.describe()
    assert_matches_source(tmp_path / "run" / "out.png")
    by_path: dict[str, list[int]] = {}
    for r in demo_server.requests():
        by_path.setdefault(r["path"], []).append(r["status"])
    assert len(by_path) == 1 + len(demo_tile_paths())
    assert all(statuses == [503, 200] for statuses in by_path.values()), by_path


def test_no_retry_means_failure(demo_server, tmp_path: Path) -> None:
    """The same with -r 0: the metadata's 503 is final: exit 4, one line naming the URL."""
    url = demo_server.url("m/fail=1,status=503,retry_after=0/demo/demo.dzi")
    result = run_dezoom(tmp_path / "run", url, "out.png", "-r", "0")
    assert_one_line_error(result, EXIT["network"], url)
    assert_left_nothing(tmp_path / "run")
    assert tile_request_paths(demo_server) == []


def test_partial_download(fault_server, tmp_path: Path) -> None:  # noqa: F811
    """One tile missing on the server: exit 6, image written (that cell black), sidecar lists it."""
    site = tmp_path / "site"
    demo = serve_demo_copy(site)
    top = len(demo_levels()) - 1
    col, row = 1, 1
    (demo / "demo_files" / str(top) / f"{col}_{row}.jpg").unlink()
    srv = fault_server(site)
    run = tmp_path / "run"
    result = run_dezoom(run, srv.url("demo/demo.dzi"), "out.png", "-r", "0", *FAST)
    assert_one_line_error(result, EXIT["partial"], "out.png")
    assert_left_nothing(run, {"out.png", "out.png.json"})

    sidecar = json.loads((run / "out.png.json").read_text())
    assert sidecar["complete"] is False
    assert [m["url"] for m in sidecar["missing_tiles"]] == [srv.url(f"demo/demo_files/{top}/{col}_{row}.jpg")]
    assert sidecar["tiles_total"] == len(demo_tile_paths())

    got = pixels(run / "out.png")
    want = pixels(DEMO_DZI.parent / "source.png")
    assert got.shape == want.shape
    cell = (slice(row * DEMO_TILE, (row + 1) * DEMO_TILE), slice(col * DEMO_TILE, (col + 1) * DEMO_TILE))
    assert got[cell].max() == 0, "the missing tile's cell must be black"
    mask = np.ones(got.shape[:2], dtype=bool)
    mask[cell] = False
    assert float(np.abs(got - want)[mask].mean()) < JPEG_NOISE
    assert float(want[cell].mean()) > 10, "the source is not black there, so black means missing"


def test_metadata_with_query_string(demo_server, tmp_path: Path) -> None:
    """A metadata URL with a query string (a token, say) still downloads the whole image."""
    url = demo_server.url("demo/demo.dzi?token=abc&x=1")
    result = run_dezoom(tmp_path / "run", url, "out.png", *FAST)
    assert result.code == 0, result.describe()
    assert_matches_source(tmp_path / "run" / "out.png")
    assert request_paths(demo_server)[0] == "/demo/demo.dzi?token=abc&x=1"
    assert len(tile_request_paths(demo_server)) == len(demo_tile_paths())
