"""Looking at tiles fetched during resolution (generic and custom probe a few): size, format, pixels.

Pure functions over bytes already in the Documents store; nothing here touches the network.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

from dezoom_steps.cache import sniff_image

if TYPE_CHECKING:
    import numpy as np

# numpy and Pillow are imported by the functions that need them: this module is loaded with the
# dezoomers that probe tiles, by every resolve, whose input is seldom such a format.

MAX_SIDE = 16384  # a probed tile larger than this per side is not treated as a tile


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from an image's header, or None when `data` is not a usable image."""
    if sniff_image(data) is None:
        return None
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
    except Exception:  # any decoder complaint means "not a tile"
        return None
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        return None
    return w, h


def image_format(data: bytes) -> str:
    """The tile file format named by the bytes' signature ("jpg", "png", ...), or ""."""
    fmt = sniff_image(data) or ""
    return "jpg" if fmt == "jpeg" else fmt


def decode_rgb(data: bytes) -> np.ndarray | None:
    """The pixels as an (h, w, 3) int16 array (alpha composited on black), or None if undecodable."""
    if image_size(data) is None:
        return None
    import numpy as np
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = np.asarray(img.convert("RGBA"), dtype=np.int32)
                    return ((rgba[:, :, :3] * rgba[:, :, 3:] + 127) // 255).astype(np.int16)
                return np.asarray(img.convert("RGB")).astype(np.int16)
    except Exception:  # truncated or corrupt: treated like a missing tile
        return None
