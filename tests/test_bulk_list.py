"""Bulk lists: one input per line, optional titles, comments; a bad line never hides the others."""

from pathlib import Path

import pytest

from dezoom_steps.collections.bulk_list import (
    BulkLine, decode_list, is_bulk_list_name, parse_bulk_bytes, parse_bulk_list,
)
from dezoom_steps.errors import InputError
from dezoom_steps.urls import file_url_path


def _local(entry: BulkLine, expected: Path) -> bool:
    """True when the entry is a file:// URL of exactly the file `expected`."""
    return entry.ok and entry.url.startswith("file:///") and file_url_path(entry.url).samefile(expected)


def test_urls_titles_comments_and_blank_lines():
    text = (
        "# my harvest\n"
        "\n"
        "https://example.org/iiif/abc/info.json\n"
        "   \t  \n"
        "  https://example.org/z/ImageProperties.xml   The Rocky Mountains, Lander's Peak  \n"
        "    # an indented comment\n"
        "HTTP://EXAMPLE.ORG/a.dzi\tTab-separated: title # not a comment\n"
    )
    entries = parse_bulk_list(text, "harvest.txt")
    assert [(e.line_no, e.url, e.title, e.error) for e in entries] == [
        (3, "https://example.org/iiif/abc/info.json", None, None),
        (5, "https://example.org/z/ImageProperties.xml", "The Rocky Mountains, Lander's Peak", None),
        (7, "HTTP://EXAMPLE.ORG/a.dzi", "Tab-separated: title # not a comment", None),
    ]


def test_crlf_bom_and_old_mac_line_ends_give_the_same_entries_and_line_numbers():
    lines = ["# c", "https://x.org/1.dzi One", "", "https://x.org/2.dzi  Two  "]
    expected = [(2, "https://x.org/1.dzi", "One"), (4, "https://x.org/2.dzi", "Two")]
    for text in ("\n".join(lines), "\r\n".join(lines) + "\r\n", "\ufeff" + "\r\n".join(lines), "\r".join(lines)):
        got = [(e.line_no, e.url, e.title) for e in parse_bulk_list(text, "l.txt")]
        assert got == expected, repr(text)


def test_bytes_with_a_bom_decode_and_non_utf8_is_one_clear_error():
    data = "\ufeffhttps://x.org/a.dzi Évora — 1540\r\n".encode("utf-8")
    (entry,) = parse_bulk_bytes(data, "list.txt")
    assert (entry.url, entry.title) == ("https://x.org/a.dzi", "Évora — 1540")
    with pytest.raises(InputError) as err:
        decode_list("https://x.org/a.dzi Évora".encode("latin-1"), "/data/list.txt")
    assert "/data/list.txt" in str(err.value) and "UTF-8" in str(err.value)
    assert "\n" not in str(err.value)


def test_local_relative_paths_are_relative_to_the_list_folder(tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.dzi").write_text("<Image/>")
    (tmp_path / "lists" / "b.dzi").write_text("<Image/>")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # the current folder must not matter
    source = str(tmp_path / "lists" / "list.txt")
    text = f"../images/a.dzi Page A\nb.dzi\n{tmp_path / 'images' / 'a.dzi'} absolute\n"
    a, b, absolute = parse_bulk_list(text, source)
    assert _local(a, tmp_path / "images" / "a.dzi") and a.title == "Page A"
    assert _local(b, tmp_path / "lists" / "b.dzi") and b.title is None
    assert _local(absolute, tmp_path / "images" / "a.dzi") and absolute.title == "absolute"
    # The same list given as a file: URL, and a list given by a relative path.
    (b2,) = parse_bulk_list("b.dzi", (tmp_path / "lists" / "list.txt").as_uri())
    assert _local(b2, tmp_path / "lists" / "b.dzi")
    monkeypatch.chdir(tmp_path)
    (b3,) = parse_bulk_list("b.dzi", "lists/list.txt")
    assert _local(b3, tmp_path / "lists" / "b.dzi")


def test_file_urls_and_paths_with_spaces(tmp_path):
    (tmp_path / "scan 1.dzi").write_text("<Image/>")
    (tmp_path / "c.dzi").write_text("<Image/>")
    text = f"{(tmp_path / 'c.dzi').as_uri()} Cee\nscan 1.dzi Folio 1r\nscan 1.dzi\n"
    cee, scan, scan_untitled = parse_bulk_list(text, str(tmp_path / "list.txt"))
    assert _local(cee, tmp_path / "c.dzi") and cee.title == "Cee"
    assert _local(scan, tmp_path / "scan 1.dzi") and scan.title == "Folio 1r"
    assert _local(scan_untitled, tmp_path / "scan 1.dzi") and scan_untitled.title is None


def test_a_bad_line_gets_its_own_message_and_the_others_are_kept(tmp_path):
    (tmp_path / "good.dzi").write_text("<Image/>")
    source = str(tmp_path / "list.txt")
    text = (
        "https://x.org/1.dzi First\n"
        "not-a-url Some title\n"
        "good.dzi\n"
        "ftp://x.org/3.dzi\n"
        "http:///no-host\n"
        f"{(tmp_path / 'missing.dzi').as_uri()}\n"
        "https://x.org/2.dzi Last\n"
    )
    entries = parse_bulk_list(text, source)
    assert [e.line_no for e in entries] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.ok for e in entries] == [True, False, True, False, False, False, True]
    bad = entries[1]
    assert bad.error == f"line 2 of {source}: 'not-a-url' is not a URL or an existing file"
    assert (bad.url, bad.title) == ("not-a-url", "Some title")
    assert entries[3].error.startswith(f"line 4 of {source}: 'ftp://x.org/3.dzi' is not a URL or an existing file")
    assert "ftp" in entries[3].error and "http" in entries[3].error
    assert entries[4].error.startswith(f"line 5 of {source}: 'http:///no-host' is not a URL")
    assert entries[5].error.startswith(f"line 6 of {source}:") and "missing.dzi" in entries[5].error
    for entry in entries:
        assert entry.error is None or "\n" not in entry.error
    assert (entries[0].title, entries[6].title) == ("First", "Last")


def test_a_list_from_the_web_may_not_name_local_files(tmp_path):
    (tmp_path / "x.dzi").write_text("<Image/>")
    source = "https://example.org/lists/harvest.txt"
    text = f"{tmp_path / 'x.dzi'}\n{(tmp_path / 'x.dzi').as_uri()}\nx.dzi\nhttps://example.org/a.dzi A\n"
    entries = parse_bulk_list(text, source)
    assert [e.ok for e in entries] == [False, False, False, True]
    for entry in entries[:3]:
        assert entry.error.startswith(f"line {entry.line_no} of {source}: ")
        assert "http(s)" in entry.error


def test_url_templates_are_inputs_even_though_no_file_has_that_name(tmp_path):
    (entry,) = parse_bulk_list("tiles/map_{{X}}_{{Y}}.jpg Map", str(tmp_path / "list.txt"))
    assert entry.ok and entry.url.startswith("file:///") and entry.title == "Map"
    assert file_url_path(entry.url) == tmp_path / "tiles" / "map_{{X}}_{{Y}}.jpg"


@pytest.mark.parametrize("text", ["", "\n\n", "# only\n  # comments\r\n", "\ufeff"])
def test_a_list_without_entries_is_an_input_error(text):
    with pytest.raises(InputError, match="harvest.txt: the bulk list names no input"):
        parse_bulk_list(text, "harvest.txt")


def test_a_list_where_every_line_is_bad_still_reports_each_line():
    entries = parse_bulk_list("a b\nc d\n", "l.txt")
    assert [e.error for e in entries] == [
        "line 1 of l.txt: 'a' is not a URL or an existing file",
        "line 2 of l.txt: 'c' is not a URL or an existing file",
    ]


def test_bulk_list_names_as_dezoomify_rs_guesses_them():
    assert is_bulk_list_name("urls.txt") and is_bulk_list_name("HARVEST.URLS")
    assert is_bulk_list_name("https://x.org/my-bulk") and is_bulk_list_name("https://x.org/list?id=3")
    assert is_bulk_list_name("https://x.org/a.TXT?sig=1")
    assert not is_bulk_list_name("https://x.org/iiif/abc/info.json")
    assert not is_bulk_list_name("https://x.org/list/{{X}}_{{Y}}.jpg")
