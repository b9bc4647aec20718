"""Generic {{X}}/{{Y}} templates: fixture cases, templating, the probing search and its bounds,
padding trimmed, local templates, the round cap of the metadata loop, bad templates."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dezoomer_cases import case_params, check_case
from dezoom_steps.dezoomers import all_dezoomers
from dezoom_steps.dezoomers.auto import MAX_ROUNDS, order_candidates, round_cap, run_rounds
from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.generic import MAX_SIDE, Generic, extent, fill, padding_start
from dezoom_steps.errors import InputError, MalformedMetadata, NeedsData, TooManyRounds, WrongDezoomer
from dezoom_steps.model import Found, Level
from dezoom_steps.steps.resolve import resolve
from dezoom_steps.urls import file_url_path

DEMO_SOURCE = Path(__file__).resolve().parent.parent / "examples" / "demo" / "source.png"


@pytest.mark.parametrize("case", case_params("generic"))
def test_fixture_case(case):
    check_case(case, Generic())


# ------------------------------------------------------------------ templates (spec 4.6)

def test_template_vectors():
    assert fill("http://x.com/{{x:05}}_{{y}}", 10, 11) == "http://x.com/00010_11"
    assert fill("https://h/{{Y}}/{{X}}.jpg", 3, 2) == "https://h/2/3.jpg"
    assert fill("https://h/{{X:02}}-{{x}}-{{Y:03}}", 7, 4) == "https://h/07-7-004"
    assert fill("https://h/{{X:02}}", 123, 0) == "https://h/123"  # at least N digits
    # a local path's template arrives percent-encoded in its file: URL
    assert fill("file:///d/%7B%7BX%7D%7D_%7b%7by%7d%7d.png", 1, 2) == "file:///d/1_2.png"
    # not placeholders: spaces inside, no leading 0 in the width, other letters
    for text in ("https://h/{{ x }}", "https://h/{{x:2}}", "https://h/{{z}}", "https://h/{x}"):
        assert fill(text, 1, 2) == text
        assert not Generic().hinted(text)


def test_recognition_is_case_insensitive_and_needs_a_placeholder():
    for url in ("https://h/{{X}}.jpg", "https://h/{{y}}.jpg", "https://h/{{x:03}}", "file:///a/%7B%7BX%7D%7D.jpg"):
        assert Generic().hinted(url)
    with pytest.raises(WrongDezoomer, match="no {{X}} or {{Y}} placeholder"):
        Generic().resolve("https://h/image.jpg", Documents(), {})


# ------------------------------------------------------------------ the search

def count_probes(n: int) -> tuple[int, int]:
    """(answer, probes) of the 1-D search when indices 0..n-1 exist."""
    probes = []

    def present(i: int) -> bool:
        probes.append(i)
        return i < n
    return extent(present), len(probes)


def test_1d_search_finds_every_length_up_to_1000_in_20_tries():
    # spec 15.3: "1-D: any integer 0..999 is found in <= 20 tries"
    for n in range(1, 1001):
        got, probes = count_probes(n)
        assert got == n and probes <= 20, (n, got, probes)


def test_1d_search_is_logarithmic_up_to_the_cap():
    worst = max(count_probes(n)[1] for n in (2**k + d for k in range(1, 15) for d in (-1, 0, 1)))
    assert worst <= 2 * int(math.log2(MAX_SIDE))
    with pytest.raises(ValueError):
        extent(lambda i: True)


def tiny_png(w: int = 4, h: int = 4, colour: tuple[int, int, int] = (90, 120, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


def grid_fetch(cols: int, rows: int, log: list[str], tile: bytes | None = None):
    """A fetch function serving tiles x < cols, y < rows of https://t/{x}_{y}.png (the rest fail)."""
    data = tile or tiny_png()

    def fetch(url: str) -> bytes:
        log.append(url)
        x, y = (int(v) for v in url.rsplit("/", 1)[1].split(".")[0].split("_"))
        if x < cols and y < rows:
            return data
        raise ConnectionError(f"{url}: HTTP 404 Not Found")
    return fetch


@pytest.mark.parametrize("cols,rows", [(c, r) for c in range(1, 11) for r in range(1, 11)])
def test_2d_grids_up_to_10x10_are_found_exactly_in_few_requests(cols, rows):
    # spec 15.3: every (x, y) in 0..9 x 0..9 within 20 tries (the incumbent over-estimates 1xN)
    log: list[str] = []
    out = run_rounds("https://t/{{X}}_{{Y}}.png", [Generic()], Documents(), grid_fetch(cols, rows, log), {})
    level = out.found.levels[0]
    assert (level.width, level.height, level.cols, level.rows) == (4 * cols, 4 * rows, cols, rows)
    assert len(log) == len(set(log)) and len(log) <= 20


def test_worst_case_stays_within_the_round_cap():
    # the most probes: a grid just past a power of two on both sides
    n = 2**14 + 1
    log: list[str] = []
    out = run_rounds("https://t/{{X}}_{{Y}}.png", [Generic()], Documents(), grid_fetch(n, n, log), {})
    level = out.found.levels[0]
    assert (level.cols, level.rows) == (n, n)
    assert len(log) + 1 <= Generic.max_rounds <= 64
    assert len(log) <= 2 * 2 * math.log2(MAX_SIDE) + 2


def test_a_server_that_answers_everything_is_refused_within_the_cap():
    log: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(MalformedMetadata, match="the server answers any URL"):
        run_rounds("https://t/{{X}}_{{Y}}.png", [Generic()], Documents(),
                   grid_fetch(10**9, 10**9, log), {})
    assert len(log) <= 16 and time.monotonic() - t0 < 10


def test_first_tile_missing_is_one_line_naming_the_template():
    log: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        run_rounds("https://t/{{X}}_{{Y}}.png", order_candidates("https://t/{{X}}_{{Y}}.png", all_dezoomers()),
                   Documents(), grid_fetch(0, 0, log), {})
    text = str(err.value)
    assert text.startswith("https://t/{{X}}_{{Y}}.png: no tile at column 0, row 0")
    assert "404" in text and "\n" not in text and time.monotonic() - t0 < 5
    assert err.value.exit_code == 2


def test_tile_probing_asks_one_tile_at_a_time():
    docs = Documents()
    with pytest.raises(NeedsData) as need:
        Generic().resolve("https://t/{{X}}_{{Y}}.png", docs, {})
    assert need.value.url == "https://t/0_0.png"
    docs.put("https://t/0_0.png", tiny_png())
    with pytest.raises(NeedsData) as need:
        Generic().resolve("https://t/{{X}}_{{Y}}.png", docs, {})
    assert need.value.url == "https://t/1_0.png"


# ------------------------------------------------------------------ padding

def padded(content: np.ndarray, tile: int, pad: int) -> np.ndarray:
    out = np.full((tile, tile, 3), pad, dtype=np.int16)
    out[:content.shape[0], :content.shape[1]] = content
    return out


def test_padding_start_on_lossless_tiles():
    rng = np.random.default_rng(7)
    content = rng.integers(20, 236, size=(40, 25, 3)).astype(np.int16)
    for pad in (255, 0):
        tile = padded(content, 64, pad)
        assert padding_start(tile, axis=1) == 25 and padding_start(tile, axis=0) == 40
    full = rng.integers(20, 236, size=(64, 64, 3)).astype(np.int16)
    assert padding_start(full, axis=1) == 64 and padding_start(full, axis=0) == 64
    assert padding_start(np.full((64, 64, 3), 255, np.int16), axis=1) == 0
    grey = padded(content, 64, 128)  # only white or black counts as padding
    assert padding_start(grey, axis=1) == 64


def test_full_tiles_of_real_pictures_are_not_trimmed():
    picture = np.asarray(Image.open(DEMO_SOURCE).convert("RGB"))
    for y in range(0, 800 - 256, 96):
        for x in range(0, 1200 - 256, 96):
            buf = io.BytesIO()
            Image.fromarray(picture[y:y + 256, x:x + 256]).save(buf, "JPEG", quality=75)
            tile = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.int16)
            assert (padding_start(tile, axis=1), padding_start(tile, axis=0)) == (256, 256), (x, y)


@pytest.mark.parametrize("width,height", [(232, 188), (100, 254), (2, 3), (17, 129), (255, 1), (241, 40)])
def test_padding_start_through_jpeg_ringing(width, height):
    y, x = np.mgrid[0:height, 0:width]
    content = np.stack([x % 256, y % 256, (37 * (x // 8) + 101 * (y // 8)) % 256], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(padded(content, 256, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    tile = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.int16)
    assert (padding_start(tile, axis=1), padding_start(tile, axis=0)) == (width, height)


# ------------------------------------------------------------------ local templates, through the resolve step

def test_local_template_with_braces_in_the_path(tmp_path: Path):
    folder = tmp_path / "tiles {v2} of {{Z}}"  # braces that are no placeholder stay literal
    folder.mkdir()
    for x in range(3):
        for y in range(2):
            (folder / f"r{y}_c{x:02}.png").write_bytes(tiny_png(10, 8, (40 * x, 100, 50 * y)))
    doc = resolve(url=str(folder / "r{{Y}}_c{{X:02}}.png"))
    assert doc["dezoomer"] == "generic"
    (level,) = doc["levels"]
    assert (level["width"], level["height"], level["tile_width"], level["tile_height"]) == (30, 16, 10, 8)
    last = Generic().tile_url(Level.from_json(level), 2, 1)
    assert file_url_path(last) == folder / "r1_c02.png"
    assert len(doc["documents"]) <= 12 and all(d["url"].startswith("file://") for d in doc["documents"])


# ------------------------------------------------------------------ the round cap (auto.py)

class _Hungry(Dezoomer):
    """Asks for a new document every round, `need` times, then succeeds."""

    name = "hungry"

    def __init__(self, need: int, cap: int | None = None):
        self.need, self.max_rounds = need, cap

    def resolve(self, url, docs, options):
        for i in range(self.need):
            docs.get(f"https://t/doc{i}")
        return Found(levels=[])


def test_round_cap_is_the_largest_live_cap():
    assert round_cap([_Hungry(1)]) == MAX_ROUNDS
    assert round_cap([_Hungry(1), _Hungry(1, 40), _Hungry(1, 9)]) == 40
    assert round_cap([Generic()]) == Generic.max_rounds


def test_run_rounds_honours_a_readers_own_cap():
    ok = lambda url: b"x"  # noqa: E731
    with pytest.raises(TooManyRounds):
        run_rounds("https://t/", [_Hungry(MAX_ROUNDS)], Documents(), ok, {})
    assert run_rounds("https://t/", [_Hungry(MAX_ROUNDS - 1)], Documents(), ok, {}).dezoomer.name == "hungry"
    assert run_rounds("https://t/", [_Hungry(20, cap=21)], Documents(), ok, {}).dezoomer.name == "hungry"
    with pytest.raises(TooManyRounds, match="after 21 rounds"):
        run_rounds("https://t/", [_Hungry(21, cap=21)], Documents(), ok, {})
