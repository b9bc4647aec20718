"""Generic: a tile URL template with `{{X}}` (column) and `{{Y}}` (row) placeholders (spec 4.6).

Recognition (spec 4.6): the URL holds `\\{\\{(x|y)(:0(\\d+))?\\}\\}`, case-insensitive;
`{{X:02}}` zero-pads the number to 2 digits ("`http://x.com/{{x:05}}_{{y}}` at (10,11) gives
`http://x.com/00010_11`"). A local path arrives as a file: URL in which the braces are
percent-encoded (`%7B%7BX%7D%7D`); that form is recognised too.

Nothing says how large the image is, so it is found by probing tiles, one per round of the
metadata loop (the reader stays pure: each round replays the search over the tiles already
in the Documents store and asks for the next one). A tile is "present" when its download
gave bytes Pillow can read as an image; a failed download (HTTP 404...) means "absent".

1. Tile (0, 0) must be present: a failed download means the template is wrong (InputError
   naming it, exit 2); an answer that is not an image is MalformedMetadata (exit 3).
2. Columns: along row 0, probe x = 1, 3, 7, 15... (2^k - 1) until one is absent, then bisect
   between the last present and the first absent: about 2*log2(columns) requests.
3. Rows: the same along column 0. A template without `{{Y}}` has one row (and without
   `{{X}}`, one column): nothing to probe.
4. The bottom-right tile is fetched too, as a second sample of both edges.
At most MAX_SIDE tiles per side, so at most 2 * (15 + 14) + 2 = 60 requests. The
incumbent's 2-D dichotomy over-estimates one-tile-wide images to 2x2 and pads the canvas to
whole tiles; this search does neither.

Image size: tile (0, 0) gives the tile size (tw, th); the image is (columns - 1) * tw plus the
content width of the last column, and the same for rows. The last column's content width is
its tile's width when the server crops edge tiles; when the edge tile is full-size it may be
padded (libvips' `google` layout pads edge tiles to 256 px with white), and uniform padding is
trimmed by this rule, applied to the last column's tiles in row 0 and in the last row (the
wider result wins; the same for the height with the last row's tiles):
  - padding is pure white or pure black; a pixel's deviation is its largest channel
    difference from that colour, and a line's deviation (a pixel column when looking for the
    width) is the mean over the line, leaving out the far rows that hold nothing but padding
    (every pixel within NOISE_MAX), so that a thin strip of content is not averaged away;
  - the outermost line must look like padding (deviation at most RING_MAX: JPEG ringing next
    to content), else the tile is not padded with that colour;
  - the clean run is the lines at the outer edge with deviation at most CLEAN (JPEG noise);
  - the content ends where the deviation drops most between two neighbouring lines, looking
    from RING lines inside the clean run outwards, among drops whose outer side is all
    padding-like; a drop under EDGE_JUMP means no sharp edge, and the clean run is cut;
  - an edge tile that is entirely padding contributes nothing (its column is dropped), except
    for the first tile, which is kept whole.
Content that is itself uniformly white or black along the border is indistinguishable from
padding and is trimmed too; a single line of padding next to dark content may be lost in
JPEG ringing and kept. The constants were set on JPEG tiles (quality 75-95) of the rig's and
the demo's pictures: every padding of 2 px or more found exactly, no full tile trimmed.
Only right and bottom padding is removed (a layout centred with `--centre` keeps its left and
top margins).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Mapping

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.tileimage import decode_rgb, image_format, image_size
from dezoom_steps.errors import InputError, MalformedMetadata, NeedsData, WrongDezoomer
from dezoom_steps.model import Found, Level

if TYPE_CHECKING:  # the pixels come from tileimage.decode_rgb, which imports numpy when it decodes
    import numpy as np

MAX_SIDE = 2**15  # tiles per side: the search never probes beyond index MAX_SIDE - 1
CLEAN = 3.0       # mean |deviation| from the padding colour of a padding line
RING = 16         # JPEG ringing stays within one 16-px block (4:2:0 chroma) of the content
EDGE_JUMP = 24.0  # drop of mean deviation that marks the content's last line
NOISE_MAX = 24    # largest deviation of a pixel of padding away from the content (JPEG noise)
RING_MAX = 60.0   # largest mean deviation of a line of padding next to the content (ringing)
PAD_COLOURS = (255, 0)

# Spec 13: "use re.IGNORECASE ... \{\{(?P<dimension>x|y)(?::0(?P<zeroes>\d+))?\}\}"; file: URLs
# carry the braces percent-encoded.
_PLACEHOLDER = re.compile(r"(?:\{\{|%7B%7B)(?P<dim>[xy])(?::0(?P<zeroes>\d+))?(?:\}\}|%7D%7D)", re.IGNORECASE)


def fill(template: str, col: int, row: int) -> str:
    """The template with {{X}} replaced by `col` and {{Y}} by `row`, zero-padded when asked."""
    def number(m: re.Match[str]) -> str:
        value = col if m.group("dim").lower() == "x" else row
        return str(value).rjust(int(m.group("zeroes") or 0), "0")
    return _PLACEHOLDER.sub(number, template)


def extent(present: Callable[[int], bool], limit: int = MAX_SIDE) -> int:
    """How many consecutive indices from 0 are present (index 0 is known to be): doubling, then bisection.

    Raises ValueError when index `limit - 1` is present (the template never runs out).
    """
    lo, hi, probe = 0, None, 1  # lo: known present; hi: known absent
    while hi is None:
        probe = min(probe, limit - 1)
        if present(probe):
            if probe == limit - 1:
                raise ValueError(f"tile {probe} exists too")
            lo, probe = probe, 2 * probe + 1
        else:
            hi = probe
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if present(mid):
            lo = mid
        else:
            hi = mid
    return lo + 1


def _outer_run(dev: np.ndarray, limit: float) -> int:
    """Index where the run of lines with `dev <= limit` touching the outer (last) edge begins."""
    k = len(dev)
    while k > 0 and dev[k - 1] <= limit:
        k -= 1
    return k


def padding_start(pixels: np.ndarray, axis: int) -> int:
    """Where uniform white or black padding begins along `axis` (1 = columns, 0 = rows); see the module rule."""
    n = pixels.shape[1 if axis == 1 else 0]
    for pad in PAD_COLOURS:
        dev = abs(pixels - pad).max(axis=2)  # per pixel: the largest channel deviation
        # Lines of the other axis holding nothing but padding are left out, so that a thin
        # strip of content is not averaged away.
        across = dev.max(axis=axis)
        keep = _outer_run(across, NOISE_MAX) or len(across)
        line = dev[:keep].mean(axis=0) if axis == 1 else dev[:, :keep].mean(axis=1)
        if line[-1] > RING_MAX:
            continue  # the outermost line is content, not padding of this colour
        clean = _outer_run(line, CLEAN)
        if clean == 0:
            return 0
        edge, best = clean, 0.0
        for i in range(max(0, clean - RING), n - 1):
            drop = line[i] - line[i + 1]
            if drop > best and line[i + 1:].max() <= RING_MAX:
                edge, best = i + 1, drop
        if best >= EDGE_JUMP:
            return edge
        return clean  # no sharp edge (content fades into the padding colour): the clean run
    return n


class Generic(Dezoomer):
    """Any tile server addressed by column and row: a URL template with {{X}} and {{Y}}."""

    name = "generic"
    summary = "Generic URL template with {{X}} and {{Y}} tile numbers; the size is found by probing"
    url_hint = r"(?i)(?:\{\{|%7B%7B)[xy](?::0\d+)?(?:\}\}|%7D%7D)"
    examples = (
        "https://example.org/maps/{{Y}}/{{X}}.jpg",
        "http://127.0.0.1:18101/small/google256/2/{{Y}}/{{X}}.jpg",
        "https://example.org/scans/page-12/tile_{{x:03}}_{{y:03}}.png",
    )
    auto = True
    max_rounds = 4 * (MAX_SIDE.bit_length() - 1) + 4  # every probe of the search, plus slack

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Probe the tile grid (one tile per round) and return its single level."""
        dims = {m.group("dim").lower() for m in _PLACEHOLDER.finditer(url)}
        if not dims:
            raise WrongDezoomer("the URL has no {{X}} or {{Y}} placeholder")
        probe = _Probe(url, docs)
        first = probe.tile(0, 0)
        if first is None:
            failure = docs.failure(fill(url, 0, 0))
            if failure is not None:
                raise InputError(f"{url}: no tile at column 0, row 0 ({failure}); check the template")
            raise MalformedMetadata(f"{url}: the tile at column 0, row 0 ({fill(url, 0, 0)}) is not an image")
        tw, th = first
        try:
            cols = extent(lambda x: probe.tile(x, 0) is not None) if "x" in dims else 1
            rows = extent(lambda y: probe.tile(0, y) is not None) if "y" in dims else 1
        except ValueError as exc:
            raise MalformedMetadata(
                f"{url}: every probed tile exists, up to {MAX_SIDE} per side ({exc}): "
                "the server answers any URL, so the image size cannot be found") from None
        if cols > 1 and rows > 1:
            probe.tile(cols - 1, rows - 1)  # a second sample of both edges (may be absent)
        width = probe.content(cols, tw, [(cols - 1, 0), (cols - 1, rows - 1)], axis=1)
        height = probe.content(rows, th, [(0, rows - 1), (cols - 1, rows - 1)], axis=0)
        level = Level(
            width=width, height=height, tile_width=tw, tile_height=th,
            format=image_format(docs.get(fill(url, 0, 0))),
            name=f"{-(-width // tw)} x {-(-height // th)} tiles ({width} x {height})",
            params={"template": url},
        )
        return Found(levels=[level], title=None)

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """The template filled with the column and row numbers."""
        return fill(level.params["template"], col, row)


class _Probe:
    """The tiles of one template as found in the Documents store (NeedsData for unknown ones)."""

    def __init__(self, template: str, docs: Documents):
        self.template, self.docs = template, docs

    def tile(self, col: int, row: int) -> tuple[int, int] | None:
        """Size of tile (col, row), None when absent; NeedsData when not fetched yet."""
        u = fill(self.template, col, row)
        if u not in self.docs:
            raise NeedsData(u)
        if self.docs.failure(u) is not None:
            return None
        return image_size(self.docs.get(u))

    def content(self, count: int, tile: int, samples: list[tuple[int, int]], axis: int) -> int:
        """Image length along `axis` (1: width, 0: height): full tiles, then the last one's content."""
        last = 0
        for col, row in dict.fromkeys(samples):
            u = fill(self.template, col, row)
            if u not in self.docs or self.docs.failure(u) is not None:
                continue
            data = self.docs.get(u)
            size = image_size(data)
            if size is None:
                continue
            length = size[0] if axis == 1 else size[1]
            if length >= tile:  # full-size edge tile: maybe padded
                pixels = decode_rgb(data)
                if pixels is not None:
                    length = padding_start(pixels[:, :tile] if axis == 1 else pixels[:tile], axis)
            last = max(last, min(length, tile))
        if last == 0 and count == 1:
            return tile  # a lone tile that is all padding is kept whole
        return (count - 1) * tile + last
