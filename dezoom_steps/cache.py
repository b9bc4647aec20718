"""The tile cache: one file per tile, keyed by a hash of its URL, written atomically.

A cached tile is valid when it is non-empty, starts with the magic bytes of an image format
(not an HTML error page), and, when the server announced a length, has exactly that length.
The cache is never a Snakemake output: a failed job must not delete it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Callable

from dezoom_steps.errors import OutputError

# Magic numbers of the image formats tiles come in.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
)


def cache_key(url: str) -> str:
    """The cache file name of a tile URL: 32 hex digits of its SHA-256."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def sniff_image(data: bytes) -> str | None:
    """The image format named by `data`'s magic bytes, or None (HTML, JSON, empty...)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def tile_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the tile with `key` lives in `cache_dir`."""
    return Path(cache_dir) / key


def valid_tile_bytes(data: bytes, expected_length: int | None = None) -> bool:
    """True when `data` looks like a complete image file."""
    if not data or sniff_image(data) is None:
        return False
    return expected_length is None or len(data) == expected_length


def read_cached(cache_dir: str | os.PathLike[str], key: str) -> bytes | None:
    """The bytes of a valid cached tile, or None when absent or invalid."""
    try:
        data = tile_path(cache_dir, key).read_bytes()
    except OSError:
        return None
    return data if valid_tile_bytes(data) else None


def is_cached(cache_dir: str | os.PathLike[str], key: str) -> bool:
    """True when a valid tile with `key` is in the cache (reads only its first bytes)."""
    try:
        fd = os.open(os.path.join(os.fspath(cache_dir), key), os.O_RDONLY)  # no Path: thousands of tiles
    except OSError:
        return False
    try:
        head = os.read(fd, 16)
    except OSError:
        return False
    finally:
        os.close(fd)
    return valid_tile_bytes(head)


def cached_keys(cache_dir: str | os.PathLike[str], keys: list[str]) -> set[str]:
    """Those of `keys` whose valid tile is in the cache; one directory listing, then a look at each present file."""
    try:
        present = set(os.listdir(cache_dir))
    except OSError:
        return set()
    return {k for k in keys if k in present and is_cached(cache_dir, k)}


class TileStore:
    """The `store` of a download that writes checked tiles into one cache folder, each under its key.

    A check helper (checkworker.py) writes them itself when it has the folder; the cache write
    then runs beside the download loop too.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], key_of: Callable[[Any], str]):
        self.directory = os.fspath(cache_dir)
        self.key_of = key_of

    def __call__(self, tile: Any, data: bytes) -> None:
        try:
            store(self.directory, self.key_of(tile), data)
        except OSError as exc:
            raise self.failure(exc.strerror or str(exc)) from None

    def failure(self, reason: str) -> OutputError:
        """The error that stops a download whose cache write failed (a full disk, say): exit 5."""
        return OutputError(f"{self.directory}: cannot write to the tile cache ({reason})")


def store(cache_dir: str | os.PathLike[str], key: str, data: bytes) -> Path:
    """Write a tile into the cache atomically: a temporary file of this process and thread, then rename.

    A tile is written once per download, so this path is kept to four system calls (issue 7:
    a mkstemp-based write cost as much as the HTTP request of a small tile). The temporary name
    starts with a dot and ends in ".part"; a killed writer leaves at most such a file, never a
    partial tile under its key.
    """
    folder = os.fspath(cache_dir)
    path = os.path.join(folder, key)
    tmp = os.path.join(folder, f".{key}.{os.getpid()}-{threading.get_ident()}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any file the user makes
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            view = memoryview(data)
            while view:
                view = view[f.write(view):]
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(path)
