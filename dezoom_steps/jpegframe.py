"""The frame header of a JPEG file, read from its markers (pure: bytes in, facts out).

ITU-T T.81 §B.1.1.3: after SOI (FFD8) comes a sequence of marker segments, each "FFxx" and a
two-byte length that counts itself; the frame header SOFn (n = 0-15 except 4, 8, 12) carries
sample precision (1 byte), number of lines Y (2), samples per line X (2) and the number of
components (1). APP14 "Adobe" segments change how components are to be read (CMYK, YCCK).
Tile validation reads this once per tile (issue 7), so it avoids Pillow's slower marker walk.
"""

from __future__ import annotations

from dataclasses import dataclass

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # T.81 Table B.1: DHT, JPG, DAC are not frames
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length follows
_SOS = 0xDA


class BadJpeg(ValueError):
    """A JPEG whose marker structure is broken before the frame header; the message says where."""


@dataclass(frozen=True)
class Frame:
    """What the frame header says: size, components, precision, and whether an Adobe segment came first."""

    width: int
    height: int
    components: int
    precision: int
    adobe: bool


def read_frame(data: bytes) -> Frame:
    """The frame header of JPEG `data`; `BadJpeg` when the markers before it are broken or missing."""
    if not data.startswith(b"\xff\xd8"):
        raise BadJpeg("no start-of-image marker")
    size = len(data)
    i = 2
    adobe = False
    while i + 1 < size:
        if data[i] != 0xFF:
            raise BadJpeg(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if i + 4 > size:
            break
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            raise BadJpeg(f"segment length {length} at byte {i}")
        if marker in _SOF:
            if length < 8 or i + 10 > size:
                raise BadJpeg("frame header cut short")
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return Frame(width, height, data[i + 9], data[i + 4], adobe)
        if marker == _SOS:
            raise BadJpeg("scan before any frame header")
        if marker == 0xEE and data[i + 4:i + 9] == b"Adobe":
            adobe = True
        i += 2 + length
    raise BadJpeg("the file ends before its frame header")


__all__ = ["BadJpeg", "Frame", "read_frame"]
