"""Tile validation: a body enters the tile cache only if it is a complete, decodable image.

Field notes §2 N4: "HTTP 200 whose body is HTML or an error image | black or garbage tile |
Magic bytes plus decode check; treat as failed"; §5 S5: "Cap per-tile bytes (e.g. 64 MB) and
decoded tile size (e.g. 16k x 16k); decode in a worker with limits; check magic bytes".
Pure: bytes in, a format name or `TileInvalid` out.
"""

from __future__ import annotations

import functools
import io
import sys
import threading
import warnings
from typing import Any

from PIL import Image, ImageFile, JpegImagePlugin

from dezoom_steps.cache import sniff_image
from dezoom_steps.jpegframe import BadJpeg, read_frame

MAX_TILE_SIDE = 16384  # field notes S5: "decoded tile size (e.g. 16k x 16k)"
MAX_TILE_PIXELS = MAX_TILE_SIDE * MAX_TILE_SIDE
CHECK_MODES = ("decode", "header")  # --tile-check: full decode (default), or magic bytes + header only

# Pillow's decompression-bomb limit is one process-wide value; it is set to MAX_TILE_PIXELS only
# while a tile's header is parsed, under this lock, and restored right after (never None).
_PILLOW_LIMIT_LOCK = threading.Lock()


class TileInvalid(ValueError):
    """A tile body that must not be used or cached; the message says why, in a few words."""


def _not_image_reason(data: bytes, content_type: str) -> str:
    """Why bytes without image magic are refused: an HTML, JSON or XML page, or unknown bytes."""
    head = data[:512].lstrip().lower()
    ctype = content_type or "no Content-Type"
    if "html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return f"got an HTML page ({ctype}), not an image"
    if head.startswith((b"{", b"[")) or "json" in content_type.lower():
        return f"got JSON ({ctype}), not an image"
    if head.startswith(b"<") or "xml" in content_type.lower():
        return f"got XML ({ctype}), not an image"
    return f"not an image ({ctype}, starts with {data[:8]!r})"


def _open_header(data: bytes, fmt: str) -> Image.Image:
    """Open `data` with Pillow (header only) under an explicit decompression-bomb limit.

    JPEG, nearly every tile, is opened by its plugin directly: no format probing, no global
    limit to swap (issue 7: this check ran once per tile in the download loop). The side check
    of `check_tile` is its decompression-bomb limit.
    """
    if fmt == "jpeg":
        return JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_TILE_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def check_tile(data: bytes, content_type: str = "", expected_length: int | None = None,
               mode: str = "decode") -> str:
    """The image format of a valid tile body; `TileInvalid` naming the problem otherwise.

    Accepted: known magic bytes, not HTML/JSON/XML, at most MAX_TILE_SIDE pixels per side,
    `expected_length` bytes when given, and (mode "decode") the whole image decodes.
    """
    if mode not in CHECK_MODES:
        raise ValueError(f"unknown tile check mode {mode!r}")
    if not data:
        raise TileInvalid("empty body")
    if expected_length is not None and len(data) != expected_length:
        raise TileInvalid(f"truncated body: got {len(data)} of {expected_length} bytes")
    fmt = sniff_image(data)
    if fmt is None:
        raise TileInvalid(_not_image_reason(data, content_type))
    if fmt == "jpeg":
        _check_jpeg(data, mode)
        return fmt
    try:
        img = _open_header(data, fmt)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TileInvalid(f"{fmt} tile larger than {MAX_TILE_SIDE}x{MAX_TILE_SIDE} pixels") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise TileInvalid(f"broken {fmt} header ({_short(exc)})") from None
    with img:
        _check_side(fmt, *img.size)
        if mode == "decode":
            _load(img, fmt)
    return fmt


def _check_side(fmt: str, w: int, h: int) -> None:
    if w < 1 or h < 1 or w > MAX_TILE_SIDE or h > MAX_TILE_SIDE:
        raise TileInvalid(f"{fmt} tile of {w}x{h} pixels (at most {MAX_TILE_SIDE} per side)")


def _load(img: Image.Image, fmt: str) -> None:
    try:
        img.load()
    except Exception as exc:
        raise TileInvalid(f"{fmt} tile does not decode ({_short(exc)})") from None


def _check_jpeg(data: bytes, mode: str) -> None:
    """JPEG tiles: the frame header read directly (jpegframe), then a decode at 1/8 scale.

    At 1/8 scale the entropy-coded data is read in full, as in a full decode, so a truncated or
    corrupt scan fails the same way, at a third of the cost (issue 7: this runs once per tile).
    """
    try:
        frame = read_frame(data)
    except BadJpeg as exc:
        raise TileInvalid(f"broken jpeg header ({exc})") from None
    _check_side("jpeg", frame.width, frame.height)
    if mode != "decode":
        return
    if frame.components in (1, 3) and frame.precision == 8 and not frame.adobe:
        if _turbo_accepts(data):
            return
        try:
            _decode_eighth(data, frame.width, frame.height, "RGB" if frame.components == 3 else "L")
            return
        except AttributeError:  # a Pillow without these decoder entry points: its usual path below
            pass
    try:
        img = _open_header(data, "jpeg")
    except Exception as exc:
        raise TileInvalid(f"broken jpeg header ({_short(exc)})") from None
    with img:
        img.draft(img.mode, (max(1, frame.width // 8), max(1, frame.height // 8)))
        _load(img, "jpeg")


# simplejpeg imports numpy (~70 ms): a process without numpy yet (a fetch job, a check helper)
# takes it on only after this many JPEG checks, when it has paid for itself.
TURBO_AFTER = 2000
_LOADING = object()  # simplejpeg is being imported in the background (`load_turbo_in_background`)
_turbo: Any = None  # simplejpeg once imported; False when it cannot be
_checks_before_turbo = 0


def load_turbo_in_background() -> None:
    """Import simplejpeg in a thread; until it is there, JPEG checks use Pillow alone.

    For a check helper: importing it when the 2,000th tile comes held the helper up for the
    ~70 ms numpy takes, and the download loop, its tiles waiting for verdicts, with it.
    """
    global _turbo
    if _turbo is not None:
        return
    _turbo = _LOADING

    def load() -> None:
        global _turbo
        _turbo = import_turbo()

    threading.Thread(target=load, name="simplejpeg import", daemon=True).start()


@functools.cache
def import_turbo() -> Any:
    """The simplejpeg module, or False in an environment without it (Pillow alone, as before).

    Asked once: the pyramid's half-size decode asks for it at every tile."""
    try:
        import simplejpeg
    except ImportError:
        return False
    return simplejpeg


def _turbo_accepts(data: bytes) -> bool:
    """True when libjpeg-turbo (simplejpeg) decodes `data` at 1/8 scale without a single warning.

    A fast yes, never a no: it costs two thirds of Pillow's decode per tile (issue 7: 48 µs
    against 71 µs for a 4 KB tile of 256 px; Pillow's fixed cost is 24 µs, simplejpeg's 5).
    Stopping at the first warning, it refuses more than Pillow does (Pillow lets warnings pass),
    so a refusal here is only a reason to ask Pillow, whose verdict stands: what passes is what
    passed before.
    """
    global _turbo, _checks_before_turbo
    if _turbo is None:
        _checks_before_turbo += 1
        if "numpy" not in sys.modules and _checks_before_turbo <= TURBO_AFTER:
            return False
        _turbo = import_turbo()
    if _turbo is False or _turbo is _LOADING:
        return False
    try:
        _turbo.decode_jpeg(data, min_factor=8, min_width=1, min_height=1, strict=True)
    except Exception:  # ValueError for a corrupt or truncated scan, and any other decoder complaint
        return False
    return True


def _decode_eighth(data: bytes, width: int, height: int, mode: str) -> None:
    """Run Pillow's JPEG decoder at 1/8 scale over `data`, as `Image.load` does, without its file machinery."""
    size = ((width + 7) // 8, (height + 7) // 8)
    image = Image.core.new(mode, size)
    decoder = Image._getdecoder(mode, "jpeg", (mode, ""), (8, 0))  # decoderconfig: scale 8, no draft quality
    try:
        decoder.setimage(image, (0, 0) + size)
        consumed, err = decoder.decode(data)
    finally:
        decoder.cleanup()
    if consumed >= 0:  # the decoder asks for more bytes than the body has
        raise TileInvalid("jpeg tile does not decode (image file is truncated)")
    if err < 0:
        raise TileInvalid(f"jpeg tile does not decode ({ImageFile.ERRORS.get(err, f'decoder error {err}')})")


def _short(exc: BaseException) -> str:
    """A one-line, bounded description of a decoder error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = ["CHECK_MODES", "MAX_TILE_PIXELS", "MAX_TILE_SIDE", "TileInvalid", "check_tile"]
