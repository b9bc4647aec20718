"""Atomic, schema-checked reading and writing of the small JSON files between steps."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from dezoom_steps.errors import InputError

KINDS = ("resolve", "tiles", "fetch", "stitch", "output")


def schema_id(kind: str) -> str:
    """The `schema` stamp of a file of `kind`, e.g. `dezoom-steps/tiles/1`."""
    return f"dezoom-steps/{kind}/1"


@lru_cache(maxsize=None)
def contract(kind: str) -> dict[str, Any]:
    """The JSON Schema of step files of `kind` (from dezoom_steps/contracts/)."""
    text = resources.files("dezoom_steps.contracts").joinpath(f"{kind}.schema.json").read_text()
    return json.loads(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_step_json(path: str | os.PathLike[str], kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Stamp `body` with its schema id, validate it and write it atomically; returns the document."""
    doc = {"schema": schema_id(kind), **body}
    jsonschema.validate(doc, contract(kind))
    atomic_write_bytes(path, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode())
    return doc


def read_step_json(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and validate a step file of `kind`; a missing or invalid file is an InputError."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from None
    try:
        jsonschema.validate(doc, contract(kind))
    except jsonschema.ValidationError as exc:
        raise InputError(f"{path}: not a valid {schema_id(kind)} file: {exc.message}") from None
    return doc
