"""Fixture cases of the dezoomer tests: tests/fixtures/dezoomers/<format>/<case>/case.yaml.

A case names its input URL, the documents a server would return (URL -> file of the case
folder; any other URL cannot be fetched), and either what to expect (title, every level as
[width, height, tiles] largest first, the largest level's tile size, overlap, format, first
and last tile URL, plus URLs that must be among the tiles of some level) or the error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dezoom_steps.dezoomers.auto import Outcome, run_rounds
from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.errors import MalformedMetadata, NoDezoomerFits
from dezoom_steps.model import Level

FIXTURES = Path(__file__).parent / "fixtures" / "dezoomers"
# Every format with a folder of cases (one folder per registered dezoomer name).
FORMATS = tuple(sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))


@dataclass(frozen=True)
class Case:
    """One case folder: input, stored documents and expectations."""

    format: str
    name: str
    input: str
    documents: dict[str, bytes]
    spec: dict[str, Any]

    @property
    def error(self) -> str | None:
        """"malformed" or "wrong" for cases that must fail, else None."""
        return self.spec.get("error")


def load_cases(fmt: str) -> list[Case]:
    """Every case of one format, sorted by folder name."""
    cases = []
    for folder in sorted((FIXTURES / fmt).iterdir()):
        spec = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
        docs = {url: (folder / name).read_bytes() for url, name in spec["documents"].items()}
        cases.append(Case(fmt, folder.name, spec["input"], docs, spec))
    return cases


def case_params(fmt: str | None = None) -> list[Any]:
    """pytest parameters (id = format/case) for one format, or for all of them."""
    formats = FORMATS if fmt is None else (fmt,)
    return [pytest.param(c, id=f"{c.format}/{c.name}") for f in formats for c in load_cases(f)]


# What a tile URL answers: the start of a JPEG file, which no dezoomer can read as metadata.
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def no_fetch(url: str) -> bytes:
    """The fetch function of offline tests: only fixture documents (and image tiles) exist."""
    if url.split("?")[0].lower().endswith(IMAGE_SUFFIXES):
        return JPEG_BYTES
    raise ConnectionError(f"offline test: {url} is not a fixture document")


def run_case(case: Case, candidates: list[Dezoomer]) -> Outcome:
    """The metadata loop over the case's documents, with nothing else fetchable."""
    return run_rounds(case.input, candidates, Documents(case.documents), no_fetch, {})


def tile_urls(dezoomer: Dezoomer, level: Level) -> list[str]:
    """Every tile URL of a level, in listing order."""
    return [t.url for t in dezoomer.tiles(level)]


def check_case(case: Case, dezoomer: Dezoomer) -> None:
    """Resolve a case with `dezoomer` alone and assert everything the case declares."""
    if case.error == "malformed":
        with pytest.raises(MalformedMetadata, match=re.escape(case.spec["message"])):
            run_case(case, [dezoomer])
        return
    if case.error == "wrong":
        with pytest.raises(NoDezoomerFits) as info:
            run_case(case, [dezoomer])
        assert [name for name, _ in info.value.reasons] == [dezoomer.name]
        assert case.spec["message"] in info.value.reasons[0][1]
        return
    outcome = run_case(case, [dezoomer])
    found, expect = outcome.found, case.spec["expect"]
    assert outcome.dezoomer is dezoomer
    assert found.title == expect["title"]
    got = [[lv.width, lv.height, len(tile_urls(dezoomer, lv))] for lv in found.levels]
    assert got == expect["levels"]
    assert all(lv.tile_count == n for lv, (_, _, n) in zip(found.levels, got))
    largest, want = found.levels[0], expect["largest"]
    assert [largest.tile_width, largest.tile_height] == want["tile_size"]
    assert (largest.overlap, largest.format) == (want["overlap"], want["format"])
    urls = tile_urls(dezoomer, largest)
    assert (urls[0], urls[-1]) == (want["first"], want["last"])
    every = {u for lv in found.levels for u in tile_urls(dezoomer, lv)}
    missing = [u for u in expect.get("urls", []) if u not in every]
    assert not missing, f"expected tile URLs not produced: {missing}"
    for lv in found.levels:  # levels survive resolve.json: params are plain JSON
        again = Level.from_json(json.loads(json.dumps(lv.to_json())))
        assert tile_urls(dezoomer, again) == tile_urls(dezoomer, lv)
        assert lv.name
