"""cache.store: a tile appears under its key whole or not at all, on every path it can take
(an unnamed file linked into place, or a temporary file renamed where unnamed files are missing)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dezoom_steps import cache

TILE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9"


@pytest.fixture(params=["unnamed", "renamed"])
def path_taken(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs twice: with unnamed files (O_TMPFILE), and on a file system said to lack them."""
    if request.param == "renamed":
        real_open = os.open

        def no_tmpfile(path, flags, *args, **kwargs):
            if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
                raise OSError(errno.EOPNOTSUPP, "Operation not supported", path)
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", no_tmpfile)
    monkeypatch.setattr(cache, "_NO_TMPFILE", set())
    return request.param


def test_a_stored_tile_is_the_only_file_and_has_the_users_permissions(tmp_path: Path, path_taken: str) -> None:
    folder = tmp_path / "new" / "cache"  # made on the first write
    cache.store(folder, "k1", TILE)
    assert (folder / "k1").read_bytes() == TILE
    assert os.listdir(folder) == ["k1"]
    umask = os.umask(0)
    os.umask(umask)
    assert (folder / "k1").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (str(folder) in cache._NO_TMPFILE) == (path_taken == "renamed")


def test_a_broken_tile_under_the_key_is_replaced(tmp_path: Path, path_taken: str) -> None:
    (tmp_path / "k1").write_bytes(b"<html>error page</html>")
    cache.store(tmp_path, "k1", TILE)
    assert (tmp_path / "k1").read_bytes() == TILE
    assert os.listdir(tmp_path) == ["k1"]
    assert cache.read_cached(tmp_path, "k1") == TILE


def test_a_failed_write_leaves_nothing(tmp_path: Path, path_taken: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def disk_full(fd: int, data) -> int:
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.store(tmp_path, "k1", TILE)
    assert calls, "the write was attempted"
    assert os.listdir(tmp_path) == []  # no tile under the key, no temporary file


def test_a_cache_path_that_cannot_be_a_folder_is_an_error(tmp_path: Path, path_taken: str) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OSError):  # not a silent fallback that hides the problem
        cache.store(tmp_path / "file" / "cache", "k1", TILE)
    assert (tmp_path / "file").read_bytes() == b"x"
