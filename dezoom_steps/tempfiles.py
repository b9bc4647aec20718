"""Temporary files created beside their final path, so that a rename publishes them atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dezoom_steps.errors import OutputError
from dezoom_steps.jsonio import umask_mode


def _folder_of(final: Path) -> Path:
    """`final`'s folder, made if needed; OutputError naming `final` when it is a file or cannot be made."""
    folder = final.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{final}: cannot write there, {folder} is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{final}: cannot create the folder {folder} ({exc.strerror or exc})") from None
    return folder


def temp_beside(final: Path) -> Path:
    """Create an empty temporary file in `final`'s folder (made if needed) and return its path.

    The folder being a file, or not writable, is an OutputError naming `final`.
    """
    folder = _folder_of(final)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"{final}: the folder {folder} is not writable ({exc.strerror or exc})") from None
    os.close(fd)
    os.chmod(name, umask_mode())
    return Path(name)


def temp_tree_beside(final: Path) -> Path:
    """Create an empty temporary folder in `final`'s folder and return it (OutputError if impossible)."""
    folder = _folder_of(final)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=folder))
    except OSError as exc:
        raise OutputError(f"{final}: the folder {folder} is not writable ({exc.strerror or exc})") from None
    os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes it 0700; a published tree is readable as usual
    return tmp
