"""Output names: the title sanitiser (spec 9.2 vectors), default names, workflow ids."""

from pathlib import Path

import pytest

from dezoom_steps.naming import image_id, output_path, sanitize, valid_id

SANITIZE_VECTORS = {
    "\tabc\tefg\t": "abc efg",
    "abc\u0019efg": "abcefg",
    "abc:\\/|?~=efg": "abc_=efg",
    'abc<>"*<>#%{}^[]+[]`efg': "abc []+[] efg",
    "-_ \tabc \t >_-\n   efg \t_-": "abc-efg",
    "abc\r\nefg": "abc-efg",
    "abc_ __  efg __hij": "abc_ efg hij",
    "https://blog.getreu.net/projects/": "https_blog.getreu.net_projects",
    "résumé": "résumé",
    ";-_hello.,\n,.world_-;": "hello-world",
    ".period": "period",
    "/abs/path/to/some/dir": "abs_path_to_some_dir",
    "~/.\0notssh/authorized_keys": "notssh_authorized_keys",
    "..": "",
    "./": "",
    "*.|.": "",
    "|*.what": "what",
    "author: title": "author_ title",
    "no , enumeration": "no enumeration",
    "Any questions? Or not?": "Any questions_ Or not",
    "foo\u200bbar": "foobar",
    "filename(1).ext": "filename(1).ext",
    "LPT9.asdf": "LPT9.asdf",
}


@pytest.mark.parametrize("raw,expected", SANITIZE_VECTORS.items())
def test_sanitize_vectors(raw, expected):
    assert sanitize(raw) == expected


@pytest.mark.parametrize("title", [
    "? [Question Mark] Australian WWI Poster",
    "The Rocky Mountains, Lander's Peak",
    '"Is It So Nominated in the Bond?" (Scene from "The Merchant of Venice")',
    "",
    "../../etc/passwd",
    "x" * 1000,
])
def test_titles_give_creatable_names_inside_the_folder(tmp_path, title):
    path = output_path(None, title, 100, 100, tmp_path)
    assert path.parent == tmp_path
    assert len(path.name.encode()) <= 210
    path.write_bytes(b"ok")  # creatable
    assert path.exists()


def test_default_names_follow_dezoomify_rs(tmp_path):
    assert output_path(None, "hello", None, None, tmp_path).name == "hello.png"
    assert output_path(None, "hello", 1000, 1000, tmp_path).name == "hello.jpg"
    assert output_path(None, "", None, None, tmp_path).name == "dezoomified.png"
    assert output_path(None, None, 1000, 1000, tmp_path).name == "dezoomified.jpg"
    assert output_path(None, None, 70000, 10, tmp_path).name == "dezoomified.png"
    assert output_path("test.tiff", None, 10, 10, tmp_path) == Path("test.tiff")
    assert output_path("plain", None, 10, 10, tmp_path) == Path("plain.jpg")


def test_default_name_never_points_at_an_existing_file(tmp_path):
    (tmp_path / "img.jpg").write_bytes(b"x")
    (tmp_path / "img_0001.jpg").write_bytes(b"x")
    assert output_path(None, "img", 10, 10, tmp_path).name == "img_0002.jpg"


def test_image_ids_are_safe_distinct_and_stable():
    a = image_id("http://127.0.0.1:8101/small/iiif512/info.json")
    b = image_id("http://127.0.0.1:8101/medium/iiif512/info.json")
    assert a.startswith("iiif512-") and a != b
    assert a == image_id("http://127.0.0.1:8101/small/iiif512/info.json")
    assert valid_id(a) and valid_id(image_id("http://x/"))
    assert not valid_id("../etc") and not valid_id("a/b")
