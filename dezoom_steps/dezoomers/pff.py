"""Zoomify PFF: one `.pff` file behind a servlet that answers metadata and byte ranges (spec §4.7).

The input is a servlet URL whose query names the file and a request type, e.g.
`https://example.org/servlet/PFFServlet?file=/images/map.pff&requestType=1`. The client never
reads the binary file itself; it asks the servlet three kinds of question:

* `requestType=1`: the header. The reply is form data, `Error=0&newSize=N&reply_data=<PFFHEADER
  WIDTH HEIGHT TILESIZE NUMTILES HEADERSIZE VERSION .../>`.
* `requestType=2` with `begin`/`end`: the tile offset table, which starts at
  B = 0x424 + HEADERSIZE and holds 8 bytes per tile. The reply's `reply_data` is
  `"<first>, <n1> <n2> ..."`; tile i ends at byte `first + n_i` of the file.
* `requestType=0` with `begin`/`end`: one tile, cut out of the file. Tile 0 begins right after
  the table (B + 8*NUMTILES); tile i > 0 begins where tile i-1 ends.

Tiles are numbered from the full-resolution level, row by row, then the level halved (rounding
up), and so on. Levels are listed largest first (index 0 = full resolution).

Where this differs from dezoomify-rs on purpose:
- The full-resolution level is always listed, even when one of its sides is smaller than a
  tile (dezoomify-rs lists only levels whose both sides reach TILESIZE, so such an image had
  no level at all). Smaller levels follow the spec's rule.
- The header request re-encodes `file` where it holds characters that would change the query
  (`&`, `#`, `+`, `%`, spaces...); ordinary paths are inserted as they are, like dezoomify-rs.
- The title is the file's name without `.pff` (dezoomify-rs gives none).
- A servlet reply with `Error` other than 0, an unreadable header or a short offset table is
  reported as malformed metadata naming the request URL.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Mapping
from urllib.parse import parse_qsl, quote

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.support import ceil_div, whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level
from dezoom_steps.xmldoc import XmlError, attribute, local_name, parse_xml

HEADER_OFFSET = 0x424  # spec §4.7 / §17: "B = 0x424 + HEADERSIZE (0x424 = 1060)"
TABLE_ENTRY = 8  # bytes per tile in the offset table
# Spec §4.7: "every character outside [A-Za-z0-9*-._] is %-escaped", a space becomes "+".
_FORM_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._")
_QUERY_SAFE = "/:@!$'()*,;-._~"  # characters of `file` left as they are in the header request


def form_encode(value: str) -> str:
    """`value` as application/x-www-form-urlencoded: space is `+`, bytes outside [A-Za-z0-9*-._] are %XX."""
    out = []
    for byte in value.encode("utf-8"):
        if byte in _FORM_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def servlet_query(url: str) -> tuple[str, str, int] | None:
    """(base, file, requestType) of a servlet URL, or None when the query lacks `file` or `requestType`.

    A `requestType` that is not a number from 0 to 255 is MalformedMetadata.
    """
    if "?" not in url:
        return None
    base, _, query = url.partition("?")
    fields = dict(parse_qsl(query.split("#", 1)[0], keep_blank_values=True))
    if "file" not in fields or "requestType" not in fields:
        return None
    kind = fields["requestType"].strip()
    if not kind.isdigit() or int(kind) > 255:
        raise MalformedMetadata(f"{url}: requestType must be a number from 0 to 255, got {kind!r}")
    return base, fields["file"], int(kind)


def header_url(base: str, file: str) -> str:
    """The header request: `{base}?file={file}&requestType=1` (spec §4.7)."""
    return f"{base}?file={quote(file, safe=_QUERY_SAFE)}&requestType=1"


def table_url(base: str, file: str, version: int, header_size: int, tiles: int) -> str:
    """The offset-table request: file, vers, head, begin = 0x424 + HEADERSIZE, end = begin + 8*NUMTILES."""
    begin = HEADER_OFFSET + header_size
    return (f"{base}?file={form_encode(file)}&vers={version}&head={header_size}"
            f"&begin={begin}&end={begin + TABLE_ENTRY * tiles}&requestType=2")


def reply_data(data: bytes, source: str) -> str:
    """The `reply_data` field of a servlet reply (form data); MalformedMetadata otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMetadata(f"{source}: the PFF servlet reply is not text") from None
    fields = dict(parse_qsl(text.strip(), keep_blank_values=True))
    error = fields.get("Error", "0").strip()
    if error not in ("", "0"):
        raise MalformedMetadata(f"{source}: the PFF servlet reported Error={error}")
    if "reply_data" not in fields:
        raise MalformedMetadata(f"{source}: not a PFF servlet reply (no reply_data field)")
    return fields["reply_data"]


def parse_header(xml: str, source: str) -> dict[str, int]:
    """WIDTH, HEIGHT, TILESIZE, NUMTILES, HEADERSIZE and VERSION of a `<PFFHEADER .../>` (missing = 0)."""
    try:
        root = parse_xml(xml.strip().strip("\x00").encode("utf-8"))
    except XmlError as exc:
        raise MalformedMetadata(f"{source}: unable to parse the PFF header: {exc}") from None
    if local_name(root).upper() != "PFFHEADER":
        raise MalformedMetadata(f"{source}: not a PFF header (root element is <{local_name(root)}>, "
                                "expected <PFFHEADER>)")
    out = {}
    for name, minimum in (("WIDTH", 1), ("HEIGHT", 1), ("TILESIZE", 1), ("NUMTILES", 1),
                          ("HEADERSIZE", 0), ("VERSION", 0)):
        value = attribute(root, name)
        out[name] = whole_number("0" if value is None else value, name, source, minimum=minimum)
    return out


def parse_tile_indices(text: str, source: str) -> list[int]:
    """Tile end offsets from `"<first>, <n1> <n2> ..."`: each is first + n (parts after a 2nd comma ignored)."""
    parts = text.split(",")
    if len(parts) < 2:
        raise MalformedMetadata(f"{source}: Missing a part of tile indices string")
    try:
        first = int(parts[0].strip())
        return [first + int(n) for n in parts[1].split()]
    except ValueError:
        raise MalformedMetadata(f"{source}: the tile indices are not whole numbers: {text[:80]!r}") from None


def level_sizes(width: int, height: int, tile: int) -> list[tuple[int, int, int]]:
    """(width, height, tiles before it) of each level, largest first.

    Spec §4.7: "While size.x >= T and size.y >= T: emit the level, add ceil(w/T)*ceil(h/T) to
    tiles_before, and set size = ceil(size/2)"; the full-resolution level is always emitted.
    """
    out: list[tuple[int, int, int]] = []
    w, h, before = width, height, 0
    while not out or (w >= tile and h >= tile):
        out.append((w, h, before))
        before += ceil_div(w, tile) * ceil_div(h, tile)
        w, h = ceil_div(w, 2), ceil_div(h, 2)
    return out


class PFF(Dezoomer):
    """Zoomify PFF files served by a servlet (header, offset table and tiles as byte ranges)."""

    name = "pff"
    summary = "Zoomify PFF servlet: ?file=....pff&requestType=1 header, offset table and byte-range tiles"
    url_hint = r"\?(?=(?:[^#]*&)?file=)(?=(?:[^#]*&)?requestType=\d)"
    examples = (
        "https://example.org/zoomify/PFFServlet?file=/collections/map.pff&requestType=1",
        "http://127.0.0.1:8080/servlet/pff?requestType=0&file=atlas.pff&begin=16391&end=24001",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the header, then the offset table, through the servlet; list the levels."""
        query = servlet_query(url)
        if query is None:
            raise WrongDezoomer("the URL has no servlet query with `file` and `requestType` fields")
        base, file, kind = query
        meta = url if kind == 1 else header_url(base, file)
        head = parse_header(reply_data(docs.get(meta), meta), meta)
        common = f"{base}?file={form_encode(file)}&vers={head['VERSION']}&head={head['HEADERSIZE']}"
        data_start = HEADER_OFFSET + head["HEADERSIZE"] + TABLE_ENTRY * head["NUMTILES"]
        index_url = table_url(base, file, head["VERSION"], head["HEADERSIZE"], head["NUMTILES"])
        ends = parse_tile_indices(reply_data(docs.get(index_url), index_url), index_url)
        sizes = level_sizes(head["WIDTH"], head["HEIGHT"], head["TILESIZE"])
        tile = head["TILESIZE"]
        needed = sizes[-1][2] + ceil_div(sizes[-1][0], tile) * ceil_div(sizes[-1][1], tile)
        if len(ends) < needed:
            raise MalformedMetadata(f"{index_url}: the tile offset table lists {len(ends)} tiles, "
                                    f"but a {head['WIDTH']}x{head['HEIGHT']} image needs {needed}")
        levels = []
        for w, h, before in sizes:
            count = ceil_div(w, tile) * ceil_div(h, tile)
            levels.append(Level(
                width=w, height=h, tile_width=tile, tile_height=tile, format="jpg",
                name=f"{w} x {h} (tiles {before}-{before + count - 1})",
                params={"query": common, "start": ends[before - 1] if before else data_start,
                        "ends": ends[before:before + count]},
            ))
        title = PurePosixPath(file.replace("\\", "/")).name
        if title.lower().endswith(".pff"):
            title = title[:-4]
        return Found(levels=levels, title=title.strip() or None)

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{base}?file&vers&head&begin=<end of the previous tile>&end=<end of this tile>&requestType=0`."""
        p = level.params
        i = col + row * level.cols
        begin = p["ends"][i - 1] if i else p["start"]
        return f"{p['query']}&begin={begin}&end={p['ends'][i]}&requestType=0"
