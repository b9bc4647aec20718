"""Google Arts & Culture dezoomer: fixture cases, signature and decryption vectors (§4.2, §17), page parsing."""

from __future__ import annotations

import random
import struct

import pytest

import formatfixtures
from dezoomer_cases import FIXTURES, case_params, check_case, load_cases, run_case
from dezoom_steps.cache import sniff_image
from dezoom_steps.dezoomers import all_dezoomers
from dezoom_steps.dezoomers.auto import order_candidates
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.google_arts_and_culture import (
    GoogleArtsAndCulture, TileDecryptError, decrypt_tile, image_name, signed_suffix, url_path,
)
from dezoom_steps.errors import NeedsData, WrongDezoomer
from dezoom_steps.steps.fetch_tiles import dezoomer_decode

CASES = FIXTURES / "google_arts_and_culture"
# Spec §4.2, "verified test vectors": (base, token, tile (0, 0, 7) URL suffix).
VECTORS = [
    ("https://lh3.googleusercontent.com/wGcDNN8L-2COcm9toX5BTp6HPxpMPPPuxrMU-ZL-W-nDHW8I_L4R5vlBJ6ITtlmONQ",
     "KwCgJ1QIfgprHn0a93x7Q-HhJ04", "=x0-y0-z7-tHeJ3xylnSyyHPGwMZimI4EV3JP8"),
    ("https://lh5.ggpht.com/D0sqZ0sJbzoQeYFoySoXLJqgLMfXhi8-gGVGRqD_UEYUqkqk9Eqdxx5NNaw",
     "mcOPEQJmk1514hP_dJkpwVwIhPU", "=x0-y0-z7-tBJ_NeDnzAKjz3ZbOzN_uFRRIbS0"),
]
# Spec §17: the dummy decryption vector.
DUMMY_IN = bytes([10, 10, 10, 10, 186, 186, 192, 192, 16, 0, 0, 0, *[1] * 16, 222, 173, 190, 175, 4, 0, 0, 0])
DUMMY_OUT = bytes([186, 186, 192, 192, 202, 37, 17, 24, 3, 15, 249, 175, 241, 134, 189, 204, 188, 226, 106, 76,
                   222, 173, 190, 175])


@pytest.mark.parametrize("case", case_params("google_arts_and_culture"))
def test_fixture_case(case):
    check_case(case, GoogleArtsAndCulture())


@pytest.mark.parametrize("base,token,suffix", VECTORS)
def test_signature_vectors(base, token, suffix):
    assert signed_suffix(url_path(base), 0, 0, 7, token) == suffix
    # the fixture generator signs with its own code: it must agree with the spec too
    assert formatfixtures.gac_signature(url_path(base), 0, 0, 7, token) == suffix[len("=x0-y0-z7-t"):]


def test_dummy_decryption_vector():
    assert decrypt_tile(DUMMY_IN) == DUMMY_OUT


def test_stored_encrypted_tile_decrypts_to_the_stored_jpeg_exactly():
    folder = CASES / "asset_page"
    clear, encrypted = (folder / "tile.jpg").read_bytes(), (folder / "tile_encrypted.bin").read_bytes()
    assert encrypted[:4] == b"\x0a\x0a\x0a\x0a" and sniff_image(encrypted) is None
    assert decrypt_tile(encrypted) == clear and sniff_image(clear) == "jpeg"
    # the stored file is what the documented scheme gives (AES-CBC with a fixed IV is deterministic)
    assert formatfixtures.gac_encrypt(clear, header=181, encrypted=32) == encrypted


def test_the_tile_url_of_the_case_names_the_stored_encrypted_tile():
    case = next(c for c in load_cases("google_arts_and_culture") if c.name == "asset_page")
    dz = GoogleArtsAndCulture()
    largest = run_case(case, [dz]).found.levels[0]
    first = next(iter(dz.tiles(largest)))
    assert dz.decode_tile(case.documents[first.url], first) == (CASES / "asset_page" / "tile.jpg").read_bytes()


def test_random_layouts_round_trip():
    rng = random.Random(7)
    for _ in range(200):
        clear = bytes(rng.randrange(256) for _ in range(rng.randrange(16, 400)))
        e = 16 * rng.randrange(0, len(clear) // 16 + 1)
        h = rng.randrange(0, len(clear) - e + 1)
        assert decrypt_tile(formatfixtures.gac_encrypt(clear, header=h, encrypted=e)) == clear


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0 a jpeg", b"\x89PNG\r\n\x1a\n", b"abcd"])
def test_tiles_without_the_marker_pass_unchanged(data):
    if len(data) < 4:
        with pytest.raises(TileDecryptError, match="shorter than 4 bytes"):
            decrypt_tile(data)
    else:
        assert decrypt_tile(data) == data


def encrypted_layout(header: bytes, length_field: int, body: bytes, footer: bytes, h_field: int) -> bytes:
    """Marker, header, E field, body, footer, H field: with fields that may lie."""
    return b"\x0a" * 4 + header + struct.pack("<I", length_field) + body + footer + struct.pack("<I", h_field)


@pytest.mark.parametrize("data,message", [
    (b"\x0a\x0a\x0a\x0a", r"The size of the unencrypted header \(\d+\) is invalid"),
    (encrypted_layout(b"ab", 16, bytes(16), b"", 900), r"unencrypted header \(900\) is invalid"),
    (encrypted_layout(b"ab", 64, bytes(16), b"", 2), r"The size of the encrypted data \(64\) is invalid"),
    (encrypted_layout(b"ab", 15, bytes(15), b"zz", 2), "Unable to decrypt the encrypted data"),
])
def test_inconsistent_layouts_are_refused(data, message):
    with pytest.raises(TileDecryptError, match=message):
        decrypt_tile(data)


def test_decode_hook_is_picked_by_the_fetch_step_for_gac_only():
    hook = dezoomer_decode("google_arts_and_culture")
    assert hook is not None and hook(DUMMY_IN, {"index": 0, "col": 0, "row": 0, "url": "u", "x": 0, "y": 0,
                                                "w": 1, "h": 1, "crop_x": 0, "crop_y": 0, "key": "k"}) == DUMMY_OUT
    for name in ("zoomify", "iiif", "deepzoom", "pff", "nypl", "no-such-dezoomer"):
        assert dezoomer_decode(name) is None


@pytest.mark.parametrize("page,name", [
    # headings: "{g3}, {g2}; {g1}; {g4}" with greedy groups (g3 is the last word of the link)
    ('<h1 class="a">Night</h1><h2 class="b"><span class="c"><a href="/e">Anna Maria Lopez</a></span>'
     '<span class="d">1901</span></h2>', "Lopez, Anna Maria; Night; 1901"),
    ('<h1 class="a">Tom &amp; Jerry</h1><h2 class="b"><span class="c"><a href="/e">B C</a></span>'
     '<span class="d">?</span></h2>', "C, B; Tom & Jerry; ?"),
    ('x "name":"Self-Portrait","name":"other"', "Self-Portrait"),
    ("<h1>Plain</h1>", "Google Arts and Culture Image"),
])
def test_image_name(page, name):
    assert image_name(page) == name


def test_other_hosts_are_refused_without_any_download():
    with pytest.raises(WrongDezoomer, match="artsandculture.google.com"):
        GoogleArtsAndCulture().resolve("https://example.org/asset/x/y", Documents(), {})


def test_a_loopback_page_that_is_not_a_gac_page_is_refused():
    url = "http://127.0.0.1:9/page.html"
    with pytest.raises(NeedsData):
        GoogleArtsAndCulture().resolve(url, Documents(), {})
    with pytest.raises(WrongDezoomer, match="not a Google Arts & Culture page"):
        GoogleArtsAndCulture().resolve(url, Documents({url: b"<html><body>A museum</body></html>"}), {})


def test_examples_are_tried_first_in_auto_mode():
    for url in GoogleArtsAndCulture.examples:
        assert order_candidates(url, all_dezoomers())[0].name == "google_arts_and_culture", url

