"""Google Arts & Culture: asset page -> tile info -> HMAC-signed tile URLs -> AES-encrypted tiles (spec §4.2).

1. The asset page (`https://artsandculture.google.com/asset/...`) holds, in its embedded data,
   `]\\n,"//<host>/<key>","<token>"` (or `null` for an empty token): the image's base URL is
   `https:` + `//<host>/<key>`.
2. `<base>=g` is the tile-info XML: `<TileInfo tile_width tile_height>` with one
   `<pyramid_level num_tiles_x num_tiles_y empty_pels_x empty_pels_y/>` per level, in document
   order z = 0, 1, ... (usually smallest first). A level is
   `tile_width * num_tiles_x - empty_pels_x` wide (height likewise).
3. Tile (x, y) of level z is `<base>=x{x}-y{y}-z{z}-t{signature}`, the signature being an
   HMAC-SHA1 of `<key>=x{x}-y{y}-z{z}-t<token>`.
4. Tiles may come encrypted (marker `0a0a0a0a`): `decode_tile` decrypts them (AES-128-CBC,
   no padding) before anything checks or caches them.

Levels are listed largest first (index 0 = full resolution); each remembers its z.

Where this differs from dezoomify-rs on purpose:
- The token pattern also admits a `:port` after the host, and an image host on a loopback
  address keeps the page's scheme, so that a copy served on 127.0.0.1 over http works; for
  the real site (no port, not loopback) the result is the same.
- Besides `artsandculture.google.com` URLs, the same page on a loopback host is accepted when it
  names artsandculture.google.com or carries the token pattern (see `loopback.py`).
- Tiles use the default Referer (the page URL, as a browser sends), not the URL of tile (0, 0).
- HTML entities in the title taken from the page's headings are decoded (`&amp;` -> `&`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import struct
from typing import Any, Mapping
from urllib.parse import urlsplit

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.loopback import is_loopback, is_loopback_host
from dezoom_steps.dezoomers.support import whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level, TileRef
from dezoom_steps.xmldoc import XmlError, attribute, local_name, parse_xml

SITE = "artsandculture.google.com"
DEFAULT_NAME = "Google Arts and Culture Image"
# Spec §17: key bytes of the URL signature and of the tile encryption.
HMAC_KEY = bytes([123, 43, 78, 35, 222, 44, 197, 197])
AES_KEY = bytes([91, 99, 219, 17, 59, 122, 243, 224, 177, 67, 85, 86, 200, 249, 83, 12])
AES_IV = bytes([113, 231, 4, 5, 53, 58, 119, 139, 250, 111, 188, 48, 50, 27, 149, 146])
MARKER = b"\x0a\x0a\x0a\x0a"

# Spec §4.2: ]\r?\n?,"(//[a-zA-Z0-9./_\-]+)",(?:"([^"]+)"|null)  -- plus an optional :port.
_TOKEN = re.compile(r']\r?\n?,"(//[a-zA-Z0-9./_\-]+(?::\d{1,5})?[a-zA-Z0-9./_\-]*)",(?:"([^"]+)"|null)')
_HEADINGS = re.compile(
    r'<h1 class="[^"]+">([^<]+)</h1><h2 class="[^"]+"><span class="[^"]+"><a href="[^"]+">([^"]+) ([^"]+)'
    r'</a></span><span class="[^"]+">([^<]+)</span></h2>')
_NAME = re.compile(r'"name":"([^"]+)')


class MalformedPage(MalformedMetadata):
    """The asset page itself is the metadata, and it lacks the image URL and token.

    Kept apart from other malformed metadata so that the resolve driver can show this
    diagnosis as it is, instead of calling the page "an HTML page without metadata".
    """


class TileDecryptError(ValueError):
    """An encrypted tile whose layout is inconsistent (the message is dezoomify-rs's)."""


def decrypt_tile(data: bytes) -> bytes:
    """The clear image bytes of a tile: `header || AES-128-CBC-decrypt(ciphertext) || footer`.

    Layout (little-endian u32): marker 0a0a0a0a | header (H bytes) | E | ciphertext (E bytes) |
    footer | H. Without the marker the tile is not encrypted and is returned unchanged.
    """
    if len(data) < 4:
        raise TileDecryptError("the tile is shorter than 4 bytes")
    if data[:4] != MARKER:
        return data
    end = len(data) - 4
    (h,) = struct.unpack("<I", data[end:])
    if 4 + h > end:
        raise TileDecryptError(f"The size of the unencrypted header ({h}) is invalid.")
    if 4 + h + 4 > end:
        raise TileDecryptError("The size of the encrypted data is invalid.")
    (e,) = struct.unpack("<I", data[4 + h:8 + h])
    if 8 + h + e > end:
        raise TileDecryptError(f"The size of the encrypted data ({e}) is invalid.")
    ciphertext = data[8 + h:8 + h + e]
    if len(ciphertext) % 16:
        raise TileDecryptError("Unable to decrypt the encrypted data")
    # imported here: only this format's tiles need it (the import costs every other run ~10 ms)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(AES_KEY), modes.CBC(AES_IV)).decryptor()
    clear = decryptor.update(ciphertext) + decryptor.finalize()
    return data[4:4 + h] + clear + data[8 + h + e:end]


def signed_suffix(path: str, x: int, y: int, z: int, token: str) -> str:
    """`=x{x}-y{y}-z{z}-t{sig}`: sig = URL-safe base64 (no padding, '-' -> '_') of an HMAC-SHA1."""
    message = f"{path}=x{x}-y{y}-z{z}-t{token}".encode("utf-8")
    digest = hmac.new(HMAC_KEY, message, hashlib.sha1).digest()
    sig = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii").replace("-", "_")
    return f"=x{x}-y{y}-z{z}-t{sig}"


def url_path(base: str) -> str:
    """The base URL after `scheme://host/` (Rust's `splitn(4, '/')`, 4th piece)."""
    pieces = base.split("/", 3)
    return pieces[3] if len(pieces) == 4 else ""


def image_name(page: str) -> str:
    """The title from the page: headings as "Last, First; Title; Date", else JSON "name", else a default."""
    m = _HEADINGS.search(page)
    if m:
        g = [html.unescape(s) for s in m.groups()]
        return f"{g[2]}, {g[1]}; {g[0]}; {g[3]}"
    m = _NAME.search(page)
    return m.group(1) if m else DEFAULT_NAME


def looks_like_page(data: bytes) -> bool:
    """True when a document names the site or carries the token pattern (checks loopback copies)."""
    return SITE.encode() in data or _TOKEN.search(data.decode("utf-8", "replace")) is not None


def page_info(page_url: str, data: bytes) -> tuple[str, str, str]:
    """(base URL, token, name) from the asset page; MalformedMetadata naming the page otherwise."""
    try:
        page = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPage(f"{page_url}: the page is not valid UTF-8 ({exc.reason})") from None
    m = _TOKEN.search(page)
    if m is None:
        raise MalformedPage(f"{page_url}: Unable to find the token in the page")
    ref, token = m.group(1), m.group(2) or ""
    scheme = "https"
    if is_loopback_host(urlsplit("https:" + ref).hostname):  # a local copy keeps the page's scheme
        scheme = urlsplit(page_url).scheme.lower() or "https"
    return f"{scheme}:{ref}", token, image_name(page)


def tile_levels(info_url: str, data: bytes, base: str, token: str) -> list[Level]:
    """The levels of the tile-info XML, largest first, each with its z (document order)."""
    try:
        root = parse_xml(data)
    except XmlError as exc:
        raise MalformedMetadata(f"{info_url}: unable to parse the tile info: {exc}") from None
    if local_name(root) != "TileInfo":
        raise MalformedMetadata(f"{info_url}: not a tile info document (root element is <{local_name(root)}>, "
                                "expected <TileInfo>)")
    tw = whole_number(attribute(root, "tile_width"), "tile_width", info_url)
    th = whole_number(attribute(root, "tile_height"), "tile_height", info_url)
    levels = []
    for z, el in enumerate(e for e in root if local_name(e) == "pyramid_level"):
        nx = whole_number(attribute(el, "num_tiles_x"), f"num_tiles_x of level {z}", info_url)
        ny = whole_number(attribute(el, "num_tiles_y"), f"num_tiles_y of level {z}", info_url)
        ex = whole_number(attribute(el, "empty_pels_x") or "0", f"empty_pels_x of level {z}", info_url, minimum=0)
        ey = whole_number(attribute(el, "empty_pels_y") or "0", f"empty_pels_y of level {z}", info_url, minimum=0)
        w, h = tw * nx - ex, th * ny - ey
        if w <= 0 or h <= 0:
            raise MalformedMetadata(f"{info_url}: pyramid level {z} has no pixels ({w} x {h})")
        levels.append(Level(width=w, height=h, tile_width=tw, tile_height=th, format="jpg",
                            name=f"level {z} ({w} x {h})",
                            params={"base": base, "path": url_path(base), "token": token, "z": z}))
    if not levels:
        raise MalformedMetadata(f"{info_url}: the tile info has no pyramid_level")
    levels.sort(key=lambda lv: (lv.width * lv.height, lv.params["z"]), reverse=True)
    return levels


class GoogleArtsAndCulture(Dezoomer):
    """Google Arts & Culture asset pages: signed tile URLs and encrypted tiles."""

    name = "google_arts_and_culture"
    summary = "Google Arts & Culture: asset page, =g tile info, signed tile URLs, encrypted tiles"
    url_hint = r"(?i)artsandculture\.google\.com"
    examples = (
        "https://artsandculture.google.com/asset/harbour-at-dusk/AbCdEfGh12345",
        "https://artsandculture.google.com/asset/AbCdEfGh12345?hl=en",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the page (base URL, token, name), then the tile info; list the levels."""
        on_site = SITE in url.lower()
        if not on_site and not is_loopback(url):
            raise WrongDezoomer(f"not a Google Arts & Culture URL (expected {SITE})")
        data = docs.get(url)
        if not on_site and not looks_like_page(data):
            raise WrongDezoomer("not a Google Arts & Culture page (no image token, no mention of the site)")
        base, token, name = page_info(url, data)
        info_url = base + "=g"
        levels = tile_levels(info_url, docs.get(info_url), base, token)
        return Found(levels=levels, title=name)

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{base}=x{col}-y{row}-z{z}-t{signature}`."""
        p = level.params
        return p["base"] + signed_suffix(p["path"], col, row, p["z"], p["token"])

    def decode_tile(self, data: bytes, tile: TileRef) -> bytes:
        """Decrypt an encrypted tile (marker 0a0a0a0a); other tiles pass unchanged."""
        return decrypt_tile(data)
