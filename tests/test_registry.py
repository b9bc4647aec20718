"""Registry: unique names and summaries, hints that match their own examples, by_name errors."""

from __future__ import annotations

import re

import pytest

from dezoom_steps.dezoomers import REGISTRY, all_dezoomers, by_name
from dezoom_steps.errors import InputError


def test_names_are_unique_and_match_their_module():
    names = [cls.name for cls in REGISTRY]
    assert len(set(names)) == len(names) and all(names)
    for cls in REGISTRY:
        assert cls.__module__.rsplit(".", 1)[-1] == cls.name
        assert cls.__doc__ and cls.__doc__.strip()


def test_summaries_are_unique_single_lines():
    summaries = [cls.summary for cls in REGISTRY]
    assert len(set(summaries)) == len(summaries)
    assert all(s and "\n" not in s and s == s.strip() for s in summaries)


@pytest.mark.parametrize("cls", REGISTRY, ids=lambda c: c.name)
def test_every_example_is_hinted_by_its_own_dezoomer_only(cls):
    re.compile(cls.url_hint)
    assert cls.examples and cls.auto is True
    others = [d for d in all_dezoomers() if d.name != cls.name]
    for url in cls.examples:
        assert cls().hinted(url), url
        assert not [d.name for d in others if d.hinted(url)], url


def test_by_name_returns_each_registered_dezoomer():
    for cls in REGISTRY:
        assert type(by_name(cls.name)) is cls
    assert [type(d) for d in all_dezoomers()] == list(REGISTRY)


@pytest.mark.parametrize("name", ["", "dzi", "zoomify2", "auto-detect"])
def test_by_name_refuses_unknown_names_with_the_list(name):
    with pytest.raises(InputError) as err:
        by_name(name)
    text = str(err.value)
    assert f"No such dezoomer: {name}" in text
    assert all(cls.name in text for cls in REGISTRY)


def test_readme_formats_table_is_generated_from_the_registry():
    from pathlib import Path

    from dezoom_steps.dezoomers import formats_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("<!-- formats:begin", 1)[1].split("<!-- formats:end -->", 1)[0]
    assert section.split("\n", 1)[1].strip() == formats_table().strip(), \
        "README formats table is stale: regenerate it from dezoom_steps.dezoomers.formats_table()"


@pytest.mark.parametrize("name", ["zoomify", "Zoomify", "IIPImage", "iipimage"])
def test_by_name_ignores_case_as_dezoomify_rs_spells_iipimage(name):
    assert by_name(name).name == name.lower()
