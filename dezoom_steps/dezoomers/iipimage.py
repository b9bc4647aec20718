"""IIPImage (Internet Imaging Protocol): an iipsrv endpoint with `FIF=<image>`; tiles are `JTL=<res>,<index>`.

Metadata is one plain-text request for exactly the objects needed, as `Key:value` lines::

    {endpoint}?FIF={image}&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number
    -> IIP:1.0 / Max-size:1000 700 / Tile-size:256 256 / Resolution-number:3

Nothing else is asked: iipsrv answers an `obj` it does not know, or any other unknown
parameter, with `400 Error/11:3` (seen on iipsrv 1.1 for `obj=Foo-bar`), and older servers
refuse `obj=min-max-sample-values` (field notes M21). Parameter names are matched
case-insensitively (`fif=`, `jtl=` occur in the wild); the input's other query parameters
(`JTL`, `WID`, `CVT`, `SDS`...) never reach metadata or tile URLs, only `FIF` does, and its
value is copied byte for byte (Windows paths, `%2F`... are never re-encoded).

Resolution numbers count from the smallest (0) to the full size (N-1); a tile's index is
row-major: `row * ceil(level_width / tile_width) + col`. Level sizes are ROUNDED DOWN:
res l is `floor(W / 2**(N-1-l))` x `floor(H / 2**(N-1-l))`. Observed on iipsrv 1.1 (rig, vips
pyramidal TIFFs): `obj=Resolutions` lists `156 109,312 218,625 437,1250 875,2500 1750,
5000 3500,10000 7000` for the 10000x7000 image (7000/16 = 437.5 -> 437, not 438), and tile
`JTL=2,5` of that level is 113x181 (625 = 2*256+113, 437 = 256+181). iipsrv's OpenJPEG reader
also halves with integer division. When the document does carry a `Resolutions` line (the
user's URL asked for it), those sizes are used as given.

Levels are returned largest first (index 0 = full resolution).
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import unquote

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.support import whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level

# The objects requested, in this order (spec 4.9 asks for the last three; IIP,1.0 is the
# protocol version every IIP client sends first).
METADATA_OBJECTS = ("IIP,1.0", "Max-size", "Tile-size", "Resolution-number")
REQUIRED_KEYS = ("Max-size", "Tile-size", "Resolution-number")
MAX_RESOLUTIONS = 40  # 2**40 pixels per side: anything larger is a broken document
MAX_METADATA_BYTES = 64 * 1024


def split_input(url: str) -> tuple[str, str, list[str]] | None:
    """(endpoint, raw `FIF=value` parameter, all raw parameters) of an IIP URL, or None without FIF."""
    url = url.split("#", 1)[0]
    if "?" not in url:
        return None
    endpoint, query = url.split("?", 1)
    params = [p for p in query.split("&") if p]
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "fif" and value:
            return endpoint, p, params
    return None


def metadata_url(url: str) -> str | None:
    """The metadata request for `url` (None without a FIF parameter).

    A URL that already asks for every needed object (and nothing but FIF and obj) is used as
    given; any other (a tile, a region, a bare FIF) becomes the canonical request.
    """
    parts = split_input(url)
    if parts is None:
        return None
    endpoint, fif, params = parts
    pairs = [(k.strip().lower(), v.strip().lower()) for k, _, v in (p.partition("=") for p in params)]
    objects = {v for k, v in pairs if k == "obj"}
    if {k for k, _ in pairs} <= {"fif", "obj"} and {k.lower() for k in REQUIRED_KEYS} <= objects:
        return url.split("#", 1)[0]
    return f"{endpoint}?{fif}&" + "&".join(f"obj={o}" for o in METADATA_OBJECTS)


def parse_metadata(meta: str, data: bytes) -> dict[str, list[str]]:
    """`Key:value` lines -> {lower-case key: value words}; the first occurrence of a key wins."""
    if len(data) > MAX_METADATA_BYTES:
        raise MalformedMetadata(f"{meta}: too large for an IIPImage metadata answer ({len(data):,} bytes)")
    fields: dict[str, list[str]] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields.setdefault(key.strip().lower(), value.strip().split())
    return fields


def _numbers(fields: dict[str, list[str]], key: str, count: int, meta: str) -> list[int]:
    """The first `count` whole numbers of `key`, or MalformedMetadata naming the URL and key."""
    words = fields.get(key.lower())
    if words is None:
        raise MalformedMetadata(f"{meta}: missing key '{key}' in the IIPImage metadata")
    if len(words) < count:
        raise MalformedMetadata(f"{meta}: '{key}' needs {count} numbers, got {' '.join(words)!r}")
    return [whole_number(w, key, meta) for w in words[:count]]


def _resolutions(fields: dict[str, list[str]], count: int, meta: str) -> list[tuple[int, int]] | None:
    """The sizes of a `Resolutions:w h,w h,...` line (smallest first), if present and consistent."""
    words = fields.get("resolutions")
    if not words:
        return None
    pairs = " ".join(words).split(",")
    if len(pairs) != count:
        raise MalformedMetadata(f"{meta}: 'Resolutions' lists {len(pairs)} sizes, but Resolution-number is {count}")
    sizes = []
    for pair in pairs:
        wh = pair.split()
        if len(wh) != 2:
            raise MalformedMetadata(f"{meta}: 'Resolutions' entry {pair.strip()!r} is not 'width height'")
        sizes.append((whole_number(wh[0], "Resolutions", meta), whole_number(wh[1], "Resolutions", meta)))
    return sizes


def image_name(fif: str) -> str | None:
    """The image's file name from the raw `FIF=value` parameter (`a/b/c.tif` -> `c.tif`)."""
    value = unquote(fif.split("=", 1)[1]).replace("\\", "/").rstrip("/")
    return value.rsplit("/", 1)[-1].strip() or None


class IIPImage(Dezoomer):
    """IIPImage servers (iipsrv) speaking the Internet Imaging Protocol: FIF= metadata, JTL= tiles."""

    name = "iipimage"
    summary = "IIPImage (Internet Imaging Protocol): iipsrv ?FIF=image metadata with JTL=res,index tiles"
    url_hint = r"(?i)[?&]FIF="
    examples = (
        "https://example.org/fcgi-bin/iipsrv.fcgi?FIF=paintings/portrait.tif",
        "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?FIF=medium_pyr.tif&JTL=4,11",
        "https://example.org/iipsrv?fif=osci/G39094sm2.ptif&jtl=4,11",
        "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?FIF=medium_pyr.tif&obj=IIP,1.0&obj=Max-size"
        "&obj=Tile-size&obj=Resolution-number&obj=Resolutions",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read Max-size, Tile-size and Resolution-number and list every resolution, largest first."""
        meta = metadata_url(url)
        if meta is None:
            raise WrongDezoomer("the URL has no FIF= parameter naming an IIPImage image")
        data = docs.get(meta)
        fields = parse_metadata(meta, data)
        width, height = _numbers(fields, "Max-size", 2, meta)
        tile_w, tile_h = _numbers(fields, "Tile-size", 2, meta)
        count, = _numbers(fields, "Resolution-number", 1, meta)
        if count > MAX_RESOLUTIONS:
            raise MalformedMetadata(f"{meta}: Resolution-number {count} is not plausible (at most {MAX_RESOLUTIONS})")
        sizes = _resolutions(fields, count, meta) or [
            (width >> (count - 1 - res), height >> (count - 1 - res)) for res in range(count)]
        endpoint, fif, _ = split_input(meta)  # type: ignore[misc]  (meta always has FIF)
        levels = [
            Level(width=w, height=h, tile_width=tile_w, tile_height=tile_h, format="jpg",
                  name=f"resolution {res} ({w} x {h})",
                  params={"endpoint": endpoint, "fif": fif, "res": res})
            for res, (w, h) in enumerate(sizes) if w > 0 and h > 0  # floor may empty the tiniest ones
        ]
        if not levels:
            raise MalformedMetadata(f"{meta}: no resolution of the image has a positive size")
        levels.reverse()
        return Found(levels=levels, title=image_name(fif))

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{endpoint}?FIF={image}&JTL={res},{row * cols + col}`."""
        p = level.params
        return f"{p['endpoint']}?{p['fif']}&JTL={p['res']},{row * level.cols + col}"

