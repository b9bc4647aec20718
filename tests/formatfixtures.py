"""Sites of the PFF, Google Arts & Culture and NYPL formats, generated from a picture for loopback tests.

Each `write_*` function writes under a site folder (served by tests/servers/faultserver.py)
what that format's servers would answer, from the spec's facts (§4.2, §4.7, §4.10) and
independently of the dezoomers: the PFF file layout and its tile order, the GAC URL signature
and tile encryption, the NYPL pyramid are implemented again here, so that a mistake in a
dezoomer shows up as a missing tile or a wrong pixel, not as agreement with itself.

Tiles are PNG, so a stitched result must equal the source picture exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEMO_SOURCE = REPO / "examples" / "demo" / "source.png"


def ceil_half(n: int) -> int:
    """n / 2 rounded up."""
    return (n + 1) // 2


def source_image(path: Path = DEMO_SOURCE) -> Image.Image:
    """The picture the sites are made from (the demo's 1200x800 source), as RGB."""
    with Image.open(path) as im:
        return im.convert("RGB")


def png_bytes(img: Image.Image) -> bytes:
    """`img` as PNG file bytes."""
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def scaled(img: Image.Image, width: int, height: int) -> Image.Image:
    """`img` resized to width x height (itself when the size is unchanged)."""
    return img if img.size == (width, height) else img.resize((width, height), Image.LANCZOS)


# ------------------------------------------------------------------ Zoomify PFF (spec §4.7)

PFF_MAGIC = b"PFF-EMULATION\x00\x00\x00"  # the fault server's PFF mode reads the same layout
PFF_HEADER_OFFSET = 0x424


@dataclass(frozen=True)
class PffFile:
    """What was written into an emulated .pff file."""

    path: Path
    width: int
    height: int
    tile: int
    tiles: int
    header_size: int
    version: int


def write_pff(path: Path, img: Image.Image, tile: int = 256, header_size: int = 1024,
              version: int = 106) -> PffFile:
    """An emulated .pff file (layout in faultserver.pff_servlet): every tier, full resolution first.

    Tiers halve with rounding up until one tile holds a tier; tiles are numbered tier by tier,
    each row by row, from the full resolution down, as spec §4.7 counts them.
    """
    tiers = [img.size]
    while tiers[-1][0] > tile or tiers[-1][1] > tile:
        tiers.append((ceil_half(tiers[-1][0]), ceil_half(tiers[-1][1])))
    blobs = []
    for w, h in tiers:
        level = scaled(img, w, h)
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                blobs.append(png_bytes(level.crop((left, top, min(w, left + tile), min(h, top + tile)))))
    header = (f'<PFFHEADER WIDTH="{img.width}" HEIGHT="{img.height}" TILESIZE="{tile}" NUMTILES="{len(blobs)}" '
              f'NUMIMAGES="1" HEADERSIZE="{header_size}" VERSION="{version}" />').encode()
    assert len(header) <= header_size
    table_start = PFF_HEADER_OFFSET + header_size
    offset = table_start + 8 * len(blobs)
    ends = []
    for blob in blobs:
        offset += len(blob)
        ends.append(offset)
    preamble = PFF_MAGIC + struct.pack(">I", header_size)
    out = bytearray(preamble.ljust(PFF_HEADER_OFFSET, b"\x00"))
    out += header.ljust(header_size, b" ")
    out += b"".join(struct.pack(">Q", end) for end in ends)
    out += b"".join(blobs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return PffFile(path, img.width, img.height, tile, len(blobs), header_size, version)


def pff_input(file: str) -> str:
    """The servlet path (under the server's root) asking for the header of `file`."""
    return f"pffservlet?file={file}&requestType=1"


# ------------------------------------------------------------------ Google Arts & Culture (spec §4.2, §17)

GAC_HMAC_KEY = bytes([123, 43, 78, 35, 222, 44, 197, 197])
GAC_AES_KEY = bytes([91, 99, 219, 17, 59, 122, 243, 224, 177, 67, 85, 86, 200, 249, 83, 12])
GAC_AES_IV = bytes([113, 231, 4, 5, 53, 58, 119, 139, 250, 111, 188, 48, 50, 27, 149, 146])


def gac_signature(path: str, x: int, y: int, z: int, token: str) -> str:
    """The `t` part of a tile name: HMAC-SHA1 of `path=x..-y..-z..-t<token>`, URL-safe base64, '-' -> '_'."""
    mac = hmac.new(GAC_HMAC_KEY, f"{path}=x{x}-y{y}-z{z}-t{token}".encode(), hashlib.sha1).digest()
    return base64.b64encode(mac, altchars=b"-_").decode().rstrip("=").replace("-", "_")


def gac_encrypt(clear: bytes, header: int, encrypted: int) -> bytes:
    """An encrypted tile: 0a0a0a0a | clear[:header] | E | AES-CBC(clear[header:header+E]) | rest | H."""
    assert encrypted % 16 == 0 and header + encrypted <= len(clear)
    enc = Cipher(algorithms.AES(GAC_AES_KEY), modes.CBC(GAC_AES_IV)).encryptor()
    secret = enc.update(clear[header:header + encrypted]) + enc.finalize()
    return (b"\x0a\x0a\x0a\x0a" + clear[:header] + struct.pack("<I", encrypted) + secret
            + clear[header + encrypted:] + struct.pack("<I", header))


@dataclass(frozen=True)
class GacSite:
    """A Google Arts & Culture copy: the page's path under the root, the image key, the expected title."""

    page: str
    key: str
    token: str
    title: str
    levels: list[tuple[int, int]]  # (width, height), z = 0 (smallest) first
    encrypted: int


GAC_HEADINGS = ('<h1 class="EReoAc">{title}</h1><h2 class="XV4nM"><span class="QtzOu"><a href="/entity/m0abc">'
                '{creator}</a></span><span class="QtzOu">{date}</span></h2>')


def gac_page(origin: str, key: str, token: str | None, slug: str) -> bytes:
    """An asset page: canonical link, headings (title, creator, date) and the embedded image data."""
    data = (f'window.INIT_data["Asset:{slug}"] = [[["stella.common.cobject","{slug}",["Harbour at Dusk"]]]\n'
            f',"//{origin.split("://", 1)[1]}/{key}",{json.dumps(token) if token is not None else "null"},'
            '[0,0,1200,800],null,"https://artsandculture.google.com/asset/' + slug + '"];')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<link rel="canonical" href="https://artsandculture.google.com/asset/{slug}">'
            "<title>Harbour at Dusk - Google Arts &amp; Culture</title></head><body>\n"
            + GAC_HEADINGS.format(title="Harbour at Dusk", creator="Jane Q Public", date="c. 1901")
            + f"\n<script>{data}</script>\n</body></html>\n").encode()


def write_gac(site: Path, img: Image.Image, origin: str, key: str = "gac/AF1QipOdemo",
              token: str = "Tk-9x_Q2demo", slug: str = "harbour-at-dusk/AbCdEfGh12345", tile: int = 512,
              clear_tiles: frozenset[tuple[int, int, int]] = frozenset({(0, 0, 0)})) -> GacSite:
    """Page, `=g` tile info and signed, encrypted tiles of `img` on `origin` (e.g. http://127.0.0.1:PORT).

    Levels halve with rounding up down to one tile, smallest first (z = 0). Edge tiles are full
    tile_width x tile_height squares padded with grey ("empty pels"). Tiles listed in
    `clear_tiles` as (x, y, z) are stored unencrypted, as some servers send them.
    """
    sizes = [img.size]
    while sizes[-1][0] > tile or sizes[-1][1] > tile:
        sizes.append((ceil_half(sizes[-1][0]), ceil_half(sizes[-1][1])))
    sizes.reverse()
    rows = []
    encrypted = 0
    for z, (w, h) in enumerate(sizes):
        nx, ny = -(-w // tile), -(-h // tile)
        rows.append(f'  <pyramid_level num_tiles_x="{nx}" num_tiles_y="{ny}" inverse_scale="{2 ** (len(sizes) - 1 - z)}" '
                    f'empty_pels_x="{nx * tile - w}" empty_pels_y="{ny * tile - h}"/>')
        level = scaled(img, w, h)
        for y in range(ny):
            for x in range(nx):
                cell = Image.new("RGB", (tile, tile), (128, 128, 128))
                cell.paste(level.crop((x * tile, y * tile, min(w, (x + 1) * tile), min(h, (y + 1) * tile))))
                clear = png_bytes(cell)
                body = clear
                if (x, y, z) not in clear_tiles:
                    body = gac_encrypt(clear, header=20 + (7 * x + 11 * y + 3 * z) % 90, encrypted=32 + 16 * ((x + y) % 3))
                    encrypted += 1
                name = f"{key}=x{x}-y{y}-z{z}-t{gac_signature(key, x, y, z, token)}"
                (site / name).parent.mkdir(parents=True, exist_ok=True)
                (site / name).write_bytes(body)
    info = (f'<?xml version="1.0" encoding="UTF-8"?>\n<TileInfo tile_width="{tile}" tile_height="{tile}" '
            f'full_pyramid_depth="{len(sizes)}" origin="TOP_LEFT" timestamp="1700000000" tiler_version_number="2" '
            f'image_width="{img.width}" image_height="{img.height}">\n' + "\n".join(rows) + "\n</TileInfo>\n")
    (site / f"{key}=g").write_text(info)
    page = f"asset/{slug}"
    (site / page).parent.mkdir(parents=True, exist_ok=True)
    (site / page).write_bytes(gac_page(origin, key, token, slug))
    return GacSite(page, key, token, "Public, Jane Q; Harbour at Dusk; c. 1901", sizes, encrypted)


def write_gac_page_without_token(site: Path, origin: str, slug: str = "broken/NoToken1") -> str:
    """An asset page whose embedded data lost the image URL and token; returns its path."""
    page = gac_page(origin, "gac/unused", "x", slug).replace(b'\n,"//', b'\n,"https://')
    path = f"asset/{slug}"
    (site / path).parent.mkdir(parents=True, exist_ok=True)
    (site / path).write_bytes(page)
    return path


# ------------------------------------------------------------------ NYPL (spec §4.10)

def write_nypl(site: Path, img: Image.Image, image_id: str, tile: int = 256, overlap: int = 2) -> Path:
    """`image.php/<id>/tiles/config.js` and its DeepZoom-like PNG tiles; returns the config path.

    Levels l = 0..L, L = bit_length(max(w, h)), are (w, h) // 2^(L-l); a tile carries `overlap`
    pixels on every side that has a neighbour. A rotated "90" configuration is listed too.
    """
    w, h = img.size
    top = max(w, h).bit_length()
    folder = site / "image.php" / image_id / "tiles"
    for number in range(top, -1, -1):
        lw, lh = w >> (top - number), h >> (top - number)
        if not (lw and lh):
            continue
        level = scaled(img, lw, lh)
        out = folder / "0" / str(number)
        out.mkdir(parents=True, exist_ok=True)
        for row in range(-(-lh // tile)):
            for col in range(-(-lw // tile)):
                box = (max(0, col * tile - overlap), max(0, row * tile - overlap),
                       min(lw, (col + 1) * tile + overlap), min(lh, (row + 1) * tile + overlap))
                (out / f"{col}_{row}.png").write_bytes(png_bytes(level.crop(box)))
    config = {"configs": {
        "0": {"size": {"width": str(w), "height": str(h)}, "tile_size": tile, "overlap": overlap, "format": "png"},
        "90": {"size": {"width": h, "height": w}, "tile_size": tile, "overlap": overlap, "format": "png"},
    }}
    (folder / "config.js").write_text(json.dumps(config))
    return folder / "config.js"
