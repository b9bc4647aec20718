"""The hostile-input corpus of tests/test_hostile_inputs.py: documents anyone could serve.

Each `HostileCase` names the files a fault server serves under `/<case name>/`, the input given
to `dezoom` (an http URL on that server, or a local file), extra flags, and what must happen:
the exit code the README documents, the strings the last stderr line must name, which files
may appear in the output folder, and paths the server must never see (external entities,
DTDs). `build_corpus(base, site)` makes them, with `base` the server's origin and `site` its
root folder (for local-file inputs).

Run as a script (`python tests/hostile_corpus.py netns-run ROOT INPUT SECONDS ARGS...`) it is the
driver of the cases that need a network namespace of their own (`unshare -rn`): it starts a
fault server on the namespace's 127.0.0.1, runs `dezoom` on INPUT (with `{base}` replaced by
that server's origin) and prints the outcome as JSON. Inside the namespace, addresses such as
169.254.169.254 or 10.0.0.1 lead nowhere, so a missing address policy cannot send traffic out.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

TILE = 64  # side of the corpus's good tiles (a 2 x 1 grid makes a 128 x 64 image)
GOOD_COLOURS = ((200, 40, 40), (40, 160, 60))
BLACK = (0, 0, 0)  # a missing tile's cell (--on-missing blank)
DZI_NS = "http://schemas.microsoft.com/deepzoom/2008"
PRIVATE_OPTION = "--allow-private-networks"  # the auth helper's option of the address policy


@dataclass
class HostileCase:
    """One hostile input and the outcome it must have."""

    name: str
    files: dict[str, bytes]  # path under /<name>/ -> body
    input: str  # "{dir}/x.dzi" (http on the server), "{local}/x.dzi" (a local file)
    code: int
    says: tuple[str, ...] = ()  # substrings of the last stderr line ({dir}, {base} expanded)
    args: tuple[str, ...] = ()
    outputs: frozenset[str] | None = None  # exact files of the output folder (None: see `images`)
    images: int = 0  # else: this many images (each with its sidecar), names checked as safe
    cells: tuple[tuple[int, int, int], ...] | None = None  # colour of each TILE-px cell of every image
    never_requested: tuple[str, ...] = ()  # server paths that must not appear in its log
    max_requests: int | None = None  # requests under /<name>/ allowed
    netns: bool = False  # run in a network namespace of its own (address-policy cases)
    note: str = ""
    expanded: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ small documents

def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A JPEG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A ~1 KB PNG whose header declares `width` x `height` grey pixels (a decompression bomb)."""
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)  # the first rows only: the rest never comes
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))


def dzi(width: object, height: object, tile: object = 256, overlap: object = 0, fmt: str = "png",
        prolog: str = "") -> bytes:
    """A DeepZoom descriptor (any values, written as they are)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}<Image xmlns="{DZI_NS}" TileSize="{tile}" '
            f'Overlap="{overlap}" Format="{fmt}"><Size Width="{width}" Height="{height}"/></Image>\n').encode()


def zoomify(width: object, height: object, tile: object = 256, prolog: str = "") -> bytes:
    """A Zoomify ImageProperties.xml."""
    return (f'{prolog}<IMAGE_PROPERTIES WIDTH="{width}" HEIGHT="{height}" NUMTILES="1" NUMIMAGES="1" '
            f'VERSION="1.8" TILESIZE="{tile}" />\n').encode()


def iiif(width: object, height: object, tile: object = 512, scale: str = "[1, 2, 4]", ident: str = "http://127.0.0.1/i") -> bytes:
    """An IIIF Image API 2 info.json; values are JSON text, written as they are."""
    return ('{"@context": "http://iiif.io/api/image/2/context.json", "@id": "' + ident + '", '
            '"protocol": "http://iiif.io/api/image", '
            f'"width": {width}, "height": {height}, "profile": ["http://iiif.io/api/image/2/level1.json"], '
            f'"tiles": [{{"width": {tile}, "scaleFactors": {scale}}}]}}\n').encode()


def dzi_json(width: object, height: object, tile: object = 256) -> bytes:
    """The JSON form of a DeepZoom descriptor."""
    return (f'{{"Image": {{"Format": "png", "Overlap": 0, "TileSize": {tile}, '
            f'"Size": {{"Width": {width}, "Height": {height}}}}}}}').encode()


def krpano(width: object, height: object, tile: object = 256) -> bytes:
    """A krpano 1.0 single-level tour."""
    return (f'<krpano version="1.0.8"><image type="FLAT" tiled="true" tiledimagewidth="{width}" '
            f'tiledimageheight="{height}" tilesize="{tile}" baseindex="0"><flat url="t/%v_%h.jpg" />'
            '</image></krpano>\n').encode()


def iip(max_size: str, tile: str = "256 256", resolutions: str = "3") -> bytes:
    """An iipsrv answer to ?FIF=...&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number."""
    return f"IIP:1.0\r\nMax-size:{max_size}\r\nTile-size:{tile}\r\nResolution-number:{resolutions}\r\n".encode()


IIP_QUERY = "?FIF=x.tif&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number"


def tiles_yaml(template: str, title: str | None = None, width: int = 2 * TILE, height: int = TILE,
               cols: int = 2) -> bytes:
    """A custom tiles.yaml: `cols` x 1 tiles of TILE px at `template` (with {{x}})."""
    doc = {"url_template": template, "variables": [{"name": "x", "from": 0, "to": cols - 1}],
           "x_template": f"x * {TILE}", "y_template": "0", "width": width, "height": height}
    if title is not None:
        doc["title"] = title
    return json.dumps(doc).encode()  # JSON is YAML, and escapes NUL bytes and the like


def billion_laughs(root: str, encoding: str = "utf-8") -> bytes:
    """The classic billion laughs (10 levels of 10 references) around `root`, which uses &lol9;."""
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)]
    text = f'<?xml version="1.0" encoding="{encoding}"?>\n<!DOCTYPE lolz [{"".join(ents)}]>\n{root}\n'
    return text.encode(encoding)


def quadratic_blowup(root_template: str) -> bytes:
    """One 50,000-character entity referenced 50,000 times (`{ref}` in the template)."""
    refs = "&a;" * 50_000
    return (f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "{"A" * 50_000}">]>\n'
            + root_template.format(ref=refs)).encode()


def manifest_v2(url: str, canvases: list[str], label: str = "Book") -> bytes:
    """A IIIF Presentation 2 manifest at `url` with the given canvas JSON texts."""
    return (f'{{"@context":"http://iiif.io/api/presentation/2/context.json","@id":"{url}",'
            f'"@type":"sc:Manifest","label":{json.dumps(label)},"sequences":[{{"canvases":['
            + ",".join(canvases) + "]}]}").encode()


def canvas_v2(label: str, service: str, width: int = 2 * TILE, height: int = TILE) -> str:
    """A canvas painting the image service `service` (its URL without /info.json)."""
    return json.dumps({"@id": "c", "@type": "sc:Canvas", "label": label, "width": width, "height": height,
                       "images": [{"motivation": "sc:painting", "resource": {
                           "@id": service + "/full/full/0/default.jpg",
                           "service": {"@id": service, "profile": "http://iiif.io/api/image/2/level0.json"}}}]})


# ------------------------------------------------------------------ the corpus

def good_dzi_files(prefix: str = "img") -> dict[str, bytes]:
    """A 128 x 64 DeepZoom image of two PNG tiles of 64 px (tile size 64, no overlap)."""
    files = {f"{prefix}.dzi": dzi(2 * TILE, TILE, tile=TILE, fmt="png")}
    top = 7  # ceil(log2(128))
    for level in range(top + 1):
        size = max(1, (2 * TILE) >> (top - level)), max(1, TILE >> (top - level))
        cols = -(-size[0] // TILE)
        for col in range(cols):
            w = min(TILE, size[0] - col * TILE)
            files[f"{prefix}_files/{level}/{col}_0.png"] = png(w, size[1], GOOD_COLOURS[col])
    return files


def build_corpus(base: str, site: Path) -> list[HostileCase]:
    """Every hostile case, for a server at `base` serving `site`."""
    cases: list[HostileCase] = []

    def add(name: str, files: dict[str, bytes], input: str, code: int, *says: str, **kw: object) -> None:
        cases.append(HostileCase(name, files, input, code, tuple(says), **kw))  # type: ignore[arg-type]

    def one(name: str, file: str, body: bytes, code: int, *says: str, **kw: object) -> None:
        """A case whose input is the one file it serves, over http."""
        add(name, {file: body}, "{dir}/" + file, code, "{dir}/" + file, *says, **kw)

    image = '<Image xmlns="%s" TileSize="&lol9;" Overlap="0" Format="png"><Size Width="1" Height="1"/></Image>' % DZI_NS
    # --- XML: entity bombs, external entities, DTDs (field notes S7)
    one("xml-billion-laughs-dzi", "a.dzi", billion_laughs(image), 3, "entity")
    one("xml-billion-laughs-utf16", "a.dzi", billion_laughs(image, "utf-16"), 3)
    one("xml-billion-laughs-zoomify", "ImageProperties.xml",
        billion_laughs('<IMAGE_PROPERTIES WIDTH="&lol9;" HEIGHT="1" TILESIZE="256" />'), 3, "entity")
    one("xml-billion-laughs-krpano", "tour.xml",
        billion_laughs('<krpano><image type="FLAT" tiled="true" tiledimagewidth="&lol9;" tiledimageheight="1" '
                       'tilesize="256"><flat url="t/%v_%h.jpg"/></image></krpano>'), 3)
    one("xml-quadratic-blowup", "q.dzi", quadratic_blowup(
        f'<Image xmlns="{DZI_NS}" TileSize="256" Overlap="0" Format="png"><Size Width="1" Height="1"/>'
        '<Title>{ref}</Title></Image>'), 3, "entity")
    one("xml-external-entity-file", "e.dzi", dzi(1, 1, prolog='<!DOCTYPE Image [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
        .replace(b'Format="png"', b'Format="&x;"'), 3, "entity")
    one("xml-external-entity-http", "h.dzi", dzi(1, 1, prolog=f'<!DOCTYPE Image [<!ENTITY x SYSTEM "{base}/canary/xxe">]>')
        .replace(b'Format="png"', b'Format="&x;"'), 3, never_requested=("/canary/xxe",))
    one("xml-parameter-entity", "p.dzi", dzi(1, 1, prolog=f'<!DOCTYPE Image [<!ENTITY % p SYSTEM "{base}/canary/pe"> %p;]>'),
        3, never_requested=("/canary/pe",))
    add("xml-external-dtd", {"d.dzi": dzi(2 * TILE, TILE, tile=TILE, prolog=f'<!DOCTYPE Image SYSTEM "{base}/canary/dtd">'),
                             **{k: v for k, v in good_dzi_files("d").items() if k != "d.dzi"}},
        "{dir}/d.dzi", 0, outputs=frozenset({"d.png", "d.png.json"}), args=("--format", "png"), cells=GOOD_COLOURS,
        never_requested=("/canary/dtd",), note="a DOCTYPE naming an external DTD is harmless: never loaded")
    one("xml-invalid-utf8", "u.dzi", dzi(1, 1).replace(b'Format="png"', b'Format="\xff\xfe\xc3"'), 3)
    one("xml-unknown-encoding", "enc.dzi", dzi(1, 1).replace(b'encoding="UTF-8"', b'encoding="x-hostile"'), 3)
    one("xml-too-large", "big.dzi", dzi(1, 1).replace(b"<Image", b"<!--" + b"x" * (5 << 20) + b"--><Image"), 4, "larger than",
        note="5 MB: above the metadata document cap (4 MiB) before any parsing")
    one("xml-deep-nesting", "n.dzi", b"<Image>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Image>", 3)
    # --- declared sizes (field notes S4, M15)
    one("dzi-1e6-squared", "m.dzi", dzi(10**6, 10**6), 5, "pixel budget", "--pixel-budget")
    one("dzi-1e9-by-1-tile-1", "l.dzi", dzi(10**9, 1, tile=1), 5, "tile budget", "--tile-budget")
    one("dzi-zero-width", "z.dzi", dzi(0, 100), 3, "positive")
    one("dzi-negative-height", "n.dzi", dzi(100, -5), 3)
    one("dzi-huge-number", "h.dzi", dzi("9" * 400, 100), 5, "pixel budget")
    one("dzi-tile-size-zero", "t.dzi", dzi(100, 100, tile=0), 3)
    one("dzi-overlap-huge", "o.dzi", dzi(100, 100, tile=10, overlap=10**12), 3)
    one("dzi-format-traversal", "f.dzi", dzi(100, 100, fmt="../../../etc/passwd"), 3)
    one("dzi-json-negative", "j.dzi", dzi_json(-1, 100), 3)
    one("dzi-json-1e6-squared", "k.dzi", dzi_json(10**6, 10**6), 5, "pixel budget")
    one("dzi-json-nan", "nan.dzi", dzi_json("NaN", 100), 3)
    one("iiif-1e6-squared", "a/info.json", iiif(10**6, 10**6), 5, "pixel budget")
    one("iiif-1e9-by-1", "b/info.json", iiif(10**9, 1, tile=1, scale="[1]"), 5, "tile budget")
    one("iiif-negative-width", "c/info.json", iiif(-1, 100), 3)
    one("iiif-zero-height", "d/info.json", iiif(100, 0), 3)
    one("iiif-nan", "e/info.json", iiif("NaN", 100), 3)
    one("iiif-infinity", "f/info.json", iiif(100, "Infinity"), 3)
    one("iiif-huge-float", "g/info.json", iiif("1e400", 100), 3)
    one("iiif-float-1e20", "h/info.json", iiif("1e20", "1e20"), 5, "pixel budget")
    one("iiif-string-size", "i/info.json", iiif('"12px"', 100), 3)
    one("iiif-object-size", "j/info.json", iiif('{"w": 1}', 100), 3)
    one("iiif-tile-width-zero", "k/info.json", iiif(1000, 1000, tile=0), 3)
    one("iiif-tile-width-one", "l/info.json", iiif(3000, 3000, tile=1, scale="[1]"), 5, "tile budget")
    one("iiif-scale-factors-absurd", "m/info.json", iiif(1000, 1000, scale="[1, 1e300, -4, 0, 2.5, 4611686018427387904]"), 3)
    one("iiif-levels-absurd", "n/info.json", iiif(1000, 1000, scale=json.dumps(list(range(1, 100_001)))), 4,
        "could not get any", note="100,000 scale factors: levels of equal size are merged, the largest is "
        "tried (its tiles are not served)")
    one("iiif-deep-nesting", "o/info.json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 3)
    one("iiif-deep-array", "p/info.json", b"[" * 100_000 + b"]" * 100_000, 3)
    one("iiif-invalid-utf8", "q/info.json", iiif(100, 100).replace(b"image/2/context", b"image/2/\xff\xfe"), 3)
    one("zoomify-1e6-squared", "z1/ImageProperties.xml", zoomify(10**6, 10**6), 5, "pixel budget")
    one("zoomify-tile-one", "z2/ImageProperties.xml", zoomify(20000, 20000, tile=1), 5, "tile budget")
    one("zoomify-nan", "z3/ImageProperties.xml", zoomify("NaN", 100), 3)
    one("zoomify-negative", "z4/ImageProperties.xml", zoomify(100, -100), 3)
    one("krpano-1e9-by-1", "k1/tour.xml", krpano(10**9, 1, tile=1), 5, "tile budget")
    one("krpano-tile-zero", "k2/tour.xml", krpano(1000, 1000, tile=0), 3)
    one("krpano-negative", "k3/tour.xml", krpano(-1000, 1000), 3)
    add("iip-zero-size", {"iip.fcgi": iip("0 0")}, "{dir}/iip.fcgi" + IIP_QUERY, 3, "{dir}/iip.fcgi")
    add("iip-huge-size", {"iip.fcgi": iip("1000000000 1000000000")}, "{dir}/iip.fcgi" + IIP_QUERY, 5, "pixel budget")
    add("iip-absurd-resolutions", {"iip.fcgi": iip("1000 700", resolutions="100000")}, "{dir}/iip.fcgi" + IIP_QUERY, 3)
    add("iip-tile-zero", {"iip.fcgi": iip("1000 700", tile="0 0")}, "{dir}/iip.fcgi" + IIP_QUERY, 3)
    # --- tiles that are not images (validated, never cached), decompression bombs (S5)
    good = {"t/0.png": png(TILE, TILE, GOOD_COLOURS[0]), "t/1.png": png(TILE, TILE, GOOD_COLOURS[1])}
    for kind, body in (("html", b"<!DOCTYPE html><html><body>Error</body></html>"), ("json", b'{"error": "no"}'),
                       ("xml", b'<?xml version="1.0"?><Error>no</Error>'), ("empty", b""),
                       ("truncated-jpeg", jpeg(TILE, TILE, (9, 9, 9))[:200]), ("png-bomb", png_bomb())):
        add(f"tile-{kind}-among-good", {**good, "t/1.png": body, "tiles.yaml": tiles_yaml("{dir}/t/{{x}}.png", "img")},
            "{dir}/tiles.yaml", 6, "1 missing tiles", outputs=frozenset({"img.png", "img.png.json"}),
            cells=(GOOD_COLOURS[0], BLACK),
            args=("--format", "png"))
    add("tile-all-html", {**good, "tiles.yaml": tiles_yaml("{base}/m/html=99/{name}/t/{{x}}.png", "img")},
        "{dir}/tiles.yaml", 4, "could not get any")
    add("tile-png-bomb-only", {"t/0.png": png_bomb(), "tiles.yaml": tiles_yaml("{dir}/t/{{x}}.png", "img", width=TILE, cols=1)},
        "{dir}/tiles.yaml", 4, "could not get any")
    # --- names from metadata (S1, O6): the image is saved inside the output folder
    for label, title in (("dotdot", "../../x"), ("absolute", "/etc/hostile-x"), ("windows", "C:\\hostile\\x"),
                         ("device", "CON"), ("nul-byte", "a\x00b"), ("dots", ". . ."), ("long", "é" * 400)):
        add(f"title-{label}", {**good, "tiles.yaml": tiles_yaml("{dir}/t/{{x}}.png", title)}, "{dir}/tiles.yaml", 0,
            args=("--format", "png"), images=1, cells=GOOD_COLOURS, note=f"title {title[:20]!r}")
    # --- URLs derived from metadata: other schemes (S3), and the address policy (S2)
    for scheme, template in (("file", "file:///etc/passwd?{{x}}"), ("ftp", "ftp://127.0.0.1/{{x}}.png"),
                             ("gopher", "gopher://127.0.0.1:70/{{x}}"), ("data", "data:image/png;base64,AAAA{{x}}"),
                             ("javascript", "javascript:alert({{x}})")):
        add(f"tile-scheme-{scheme}", {"tiles.yaml": tiles_yaml(template, "img")}, "{dir}/tiles.yaml", 4, "could not get any")
    for label, host in (("metadata-service", "169.254.169.254"), ("private-10", "10.0.0.1")):
        add(f"address-{label}", {"tiles.yaml": tiles_yaml(f"http://{host}/latest/{{{{x}}}}.png", "img")},
            "{dir}/tiles.yaml", 4, host, PRIVATE_OPTION, netns=True)
    # --- transport: huge documents, endless redirects
    one("huge-document", "huge.dzi", dzi(1, 1) + b" " * (40 << 20), 4, "larger than")
    add("endless-redirects", good_dzi_files("r"), "{base}/m/redirect=50/{name}/r.dzi", 4, "redirects", max_requests=11,
        note="1 request + 10 redirects followed (spec 7.2), then refused")
    # --- manifests and collections
    service = "{dir}/svc"
    man_url = "{dir}/manifest.json"
    add("manifest-million-canvases", {"manifest.json": manifest_v2(man_url, ["{}"] * 1_000_000)}, man_url, 3, man_url)
    coll = json.dumps({"@context": "http://iiif.io/api/presentation/2/context.json", "@id": "{dir}/coll.json",
                       "@type": "sc:Collection", "collections": [
                           {"@id": "{dir}/coll.json", "@type": "sc:Collection"},
                           {"@id": "{dir}/sub.json", "@type": "sc:Collection"}]}).encode()
    sub = json.dumps({"@context": "http://iiif.io/api/presentation/2/context.json", "@id": "{dir}/sub.json",
                      "@type": "sc:Collection", "collections": [{"@id": "{dir}/coll.json", "@type": "sc:Collection"}]}).encode()
    add("collection-self-reference", {"coll.json": coll, "sub.json": sub}, "{dir}/coll.json", 3, "{dir}/coll.json",
        max_requests=4)
    hostile_labels = ["../../evil", "/etc/evil", "CON", "a\x00b", "..", "C:\\evil"]
    info = iiif(2 * TILE, TILE, tile=TILE, scale="[1]", ident=service)
    svc = {"svc/info.json": info, **{f"svc/{c * TILE},0,{TILE},{TILE}/{TILE},/0/default.jpg": jpeg(TILE, TILE, GOOD_COLOURS[c])
                                     for c in (0, 1)}}
    add("bulk-manifest-hostile-labels",
        {"manifest.json": manifest_v2(man_url, [canvas_v2(lb, service) for lb in hostile_labels], label="../.."),
         **svc},
        "", 0, args=("--bulk", man_url, "--out-dir", "."), images=len(hostile_labels), cells=GOOD_COLOURS,
        note="every canvas saved inside the output folder under a sanitised name")
    add("bulk-manifest-zero-canvas", {"manifest.json": manifest_v2(man_url, [canvas_v2("zero", service, 0, 0)]),
                                      **svc},
        "", 0, args=("--bulk", man_url, "--out-dir", "."), images=1, cells=GOOD_COLOURS,
        note="M15: a 0 x 0 canvas is warned about; its image service gives the real size")
    bulk_list = "\n".join([f"{{dir}}/img.dzi {t}" for t in ("../../evil", "/etc/evil", "CON", "NUL.txt")]).encode()
    add("bulk-list-hostile-titles", {**good_dzi_files("img"), "list.txt": bulk_list}, "", 0,
        args=("--bulk", "{dir}/list.txt", "--out-dir", "."), images=4, cells=GOOD_COLOURS)
    add("bulk-list-local-paths-from-web", {"list.txt": b"/etc/passwd\nfile:///etc/passwd\n../../x.dzi\n"}, "", 6,
        "{dir}/list.txt", args=("--bulk", "{dir}/list.txt", "--out-dir", "."))
    # --- the input itself
    add("input-broken-ipv6", {}, "http://[::1/x.dzi", 2, "not a valid URL")
    add("input-local-billion-laughs", {"local.dzi": billion_laughs(image)}, "{local}/local.dzi", 3, "local.dzi", "entity")
    add("input-local-nul-title-yaml", {**good, "tiles.yaml": tiles_yaml("{dir}/t/{{x}}.png", "x\x00/../y")},
        "{local}/tiles.yaml", 0, args=("--format", "png"), images=1, cells=GOOD_COLOURS)
    return cases


def expand(case: HostileCase, base: str, site: Path) -> HostileCase:
    """The case with `{dir}`, `{base}`, `{name}` and `{local}` filled in (files, input, args, says)."""
    values = {"{dir}": f"{base}/{case.name}", "{base}": base, "{name}": case.name, "{local}": str(site / case.name)}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    def fill_bytes(data: bytes) -> bytes:
        for key, value in values.items():
            data = data.replace(key.encode(), value.encode())
        return data

    case.files = {path: fill_bytes(body) for path, body in case.files.items()}
    case.input, case.args, case.says = fill(case.input), tuple(map(fill, case.args)), tuple(map(fill, case.says))
    case.expanded = values
    return case


# ------------------------------------------------------------------ network-namespace driver

def _netns_run(root: str, input_url: str, hang: float, args: list[str]) -> None:
    """Inside a fresh network namespace: a fault server on 127.0.0.1, one `dezoom` run, JSON out."""
    import os
    import subprocess
    import sys
    import time

    here = Path(__file__).resolve().parent
    work = Path(root).parent / ("netns-" + str(os.getpid()))
    work.mkdir(parents=True, exist_ok=True)
    port_file = work / "port"
    server = subprocess.Popen([sys.executable, str(here / "servers" / "faultserver.py"), "--root", root,
                               "--log", str(work / "access.jsonl"), "--port-file", str(port_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port_file.read_text().strip()}"
        started = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", "dezoom_steps", input_url.replace("{base}", base), *args],
                                  capture_output=True, text=True, timeout=hang, stdin=subprocess.DEVNULL)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            code, out, err = -9, str(exc.stdout or ""), str(exc.stderr or "")
        print(json.dumps({"code": code, "stdout": out, "stderr": err, "seconds": time.monotonic() - started}))
    finally:
        server.terminate()
        server.wait(timeout=5)


if __name__ == "__main__":
    import sys

    if len(sys.argv) >= 5 and sys.argv[1] == "netns-run":
        _netns_run(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:])
    else:
        sys.exit("usage: hostile_corpus.py netns-run ROOT INPUT HANG_SECONDS [ARGS...]")
