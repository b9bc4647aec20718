"""Name templates, the output-folder guard and --on-exists: hostile metadata never escapes the folder."""

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.naming import (
    DEFAULT_BULK_TEMPLATE, FALLBACK_NAME, ON_EXISTS_POLICIES, claim_output, render_name,
    resolve_collision, safe_join, validate_template,
)

# Written out here, independently of the module: Windows device names and refused characters.
DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
WINDOWS_REFUSED = set('<>:"|?*\\')
BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}

LONG = ("Très/long titre \\ 🖼️ avec des/barres " * 20)[:500]
HOSTILE_TITLES = [
    "? [Question Mark] Australian WWI Poster",
    '"Is It So Nominated in the Bond?" (Scene from "The Merchant of Venice")',
    "Carte: Paris / Londres",
    "a/b/c",
    "..\\..\\Windows\\System32\\drivers",
    "..",
    ".",
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\boot.ini",
    "evil\0name\x01\x1f\x7f",
    "line one\nline two\r\n",
    "Portrait 🖼️ of 👩‍🎨 the artist",
    "\u202egpj.exe",
    "\u200fשלום עולם\u200e",
    "\u2067مرحبا\u2069 / hello",
    LONG,
    "🖼" * 120,
    "CON", "con.jpg", "nul", "COM1", "Lpt9.asdf", "aux .txt",
    "name. . .",
    "  ",
    "",
]
TEMPLATES = ["{title}", "{title|id}", "sub/{title}_{index:04}", "{manifest}/{label}", "{title}/{label}"]


def assert_safe(name: str) -> None:
    """Every property a rendered name must have on Windows, macOS and Linux."""
    assert name and not name.startswith("/") and "\\" not in name
    for part in name.split("/"):
        assert part not in ("", ".", ".."), name
        assert len(part.encode("utf-8")) <= 200, name
        assert not any(unicodedata.category(c) == "Cc" for c in part), name
        assert not (WINDOWS_REFUSED | BIDI) & set(part), name
        assert part == part.strip() and not part.endswith("."), name
        assert part.split(".", 1)[0].rstrip(" ").upper() not in DEVICES, name
        assert unicodedata.is_normalized("NFC", part), name


def fields_for(title: str) -> dict:
    """The same hostile text in every text field."""
    return {"title": title, "label": title, "manifest": title, "index": 7, "id": "abc-0123abcd"}


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_give_safe_creatable_names_inside_the_folder(tmp_path, template, title):
    name = render_name(template, fields_for(title))
    assert_safe(name)
    # Metadata never makes a folder: only the template's own "/" separate components.
    assert name.count("/") <= template.count("/")
    path = safe_join(tmp_path, name + ".jpg")
    assert path.resolve().is_relative_to(tmp_path.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ok")
    path.with_name(path.name + ".json").write_bytes(b"{}")  # the sidecar fits too
    assert path.read_bytes() == b"ok"


@settings(max_examples=300, deadline=None)
@given(title=st.text(), label=st.text(max_size=300))
def test_any_text_renders_to_a_safe_name(title, label):
    for template in ("{title}", "d/{title}/{label}_{index:04}"):
        name = render_name(template, {"title": title, "label": label, "index": 3})
        assert_safe(name)
        assert name.count("/") <= template.count("/")


def test_separators_in_titles_never_make_folders():
    assert render_name("{title}", {"title": "a/b\\c"}) == "a_b_c"
    assert render_name("{title}", {"title": "../../etc/passwd"}) == "etc_passwd"
    assert render_name("{manifest}/{label}", {"manifest": "Book 1", "label": "../p1"}) == "Book 1/p1"


def test_the_template_may_make_sub_folders():
    fields = {"manifest": "Book 1", "label": "Page 2", "index": 2}
    assert render_name("{manifest}/{index:03}_{label}", fields) == "Book 1/002_Page 2"
    assert render_name("out\\{manifest}\\{label}", fields) == "out/Book 1/Page 2"
    assert render_name("a//{label}", fields) == "a/Page 2"          # empty components dropped
    assert render_name("./{label}", fields) == "Page 2"
    assert render_name("{title}/{label}", fields) == "Page 2"       # an empty folder name vanishes
    assert render_name("sub/{title}", fields) == f"sub/{FALLBACK_NAME}"


def test_fields_formats_and_fallbacks():
    fields = {"title": "Hello world", "index": 7, "width": 640, "height": 480, "id": "abc-0123abcd"}
    assert render_name("{index:04}", fields) == "0007"
    assert render_name("{index:04d}_{title}", fields) == "0007_Hello world"
    assert render_name("{width}x{height}", fields) == "640x480"
    assert render_name("{w}x{h}", fields) == "640x480"
    assert render_name("{title:.5}", fields) == "Hello"
    assert render_name("{{literal}}{id}", fields) == "{literal}abc-0123abcd"
    assert render_name("{page}", {"page": 3}) == "3"                # a caller's own field
    assert render_name("{title|id}", {"id": "abc-1"}) == "abc-1"
    assert render_name("{title|id}", {"title": "", "id": "abc-1"}) == "abc-1"
    assert render_name("{title|id}", {"title": "?? ..", "id": "abc-1"}) == "abc-1"  # sanitises to ""
    assert render_name("{label}", {}) == FALLBACK_NAME
    assert render_name(DEFAULT_BULK_TEMPLATE, {"title": "Mona Lisa", "id": "x-1"}) == "Mona Lisa"
    assert render_name(DEFAULT_BULK_TEMPLATE, {"title": None, "id": "x-1"}) == "x-1"


def test_literal_text_of_the_template_is_cleaned_too():
    assert render_name("{title}: {label}", {"title": "T", "label": "L"}) == "T_ L"
    assert render_name("  {title}. . .", {"title": "T"}) == "T"
    assert render_name("x\x01\u202e{title}", {"title": "T"}) == "xT"


def test_reserved_windows_names_get_an_underscore():
    cases = {"CON.jpg": "CON_.jpg", "nul": "nul_", "COM1": "COM1_", "Lpt9.asdf": "Lpt9_.asdf",
             "aux .txt": "aux txt", "CONSOLE": "CONSOLE", "COM10": "COM10", "NULL.jpg": "NULL.jpg"}
    for title, expected in cases.items():
        assert render_name("{title}", {"title": title}) == expected
    assert render_name("prn/{title}", {"title": "x"}) == "prn_/x"
    assert render_name("aux .{title}", {"title": "txt"}) == "aux_ .txt"  # Windows ignores the space


def test_unicode_is_nfc_bidi_marks_go_and_emoji_stay_whole():
    assert render_name("{title}", {"title": "e\u0301te\u0301"}) == "\u00e9t\u00e9"
    assert render_name("{title}", {"title": "\u200fabc\u200e\u061c"}) == "abc"
    assert render_name("{title}", {"title": "\u202egpj.exe"}) == "gpj.exe"
    assert render_name("{title}", {"title": "👩‍🎨 artist"}) == "👩‍🎨 artist"  # ZWJ kept


def test_long_names_are_cut_on_a_character_boundary():
    assert render_name("{title}", {"title": "🖼" * 100}) == "🖼" * 50           # 4 bytes each
    assert render_name("{title}", {"title": "a" + "🖼" * 100}) == "a" + "🖼" * 49
    name = render_name("{title}", {"title": LONG})
    assert len(name.encode()) <= 200 and "/" not in name
    assert name.startswith("Très_long titre 🖼️ avec des_barres Très")  # "\\" after a space is dropped
    name = render_name("{title} {label}", {"title": "é" * 150, "label": "x" * 150})
    assert name == "é" * 100


@pytest.mark.parametrize("template", [
    "", "   ", "/abs/{title}", "\\abs\\{title}", "C:/x/{title}", "../{title}", "a/../{title}",
    "a/ .. /{title}", "{title!r}", "{title.__class__}", "{title[0]}", "{nope}", "{title|nope}", "{title|}",
    "{title", "title}", "{title:/>20}", "{index:{width}}",
])
def test_bad_templates_are_one_line_input_errors(template):
    with pytest.raises(InputError) as err:
        render_name(template, {"title": "T", "index": 1, "width": 3})
    assert "\n" not in str(err.value) and "name template" in str(err.value)
    with pytest.raises(InputError):
        validate_template(template)


def test_a_format_that_does_not_fit_the_value_is_an_input_error():
    with pytest.raises(InputError, match="does not apply"):
        render_name("{title:04d}", {"title": "abc"})
    validate_template("{title}_{index:04}")  # fine


def test_dot_dot_inside_a_component_is_not_a_folder():
    assert render_name("{title}..{id}", {"title": "a", "id": "b"}) == "a..b"
    assert render_name("..{title}", {"title": ""}) == FALLBACK_NAME


# --- safe_join ---------------------------------------------------------------------------------

def test_safe_join_keeps_names_inside_the_folder(tmp_path, monkeypatch):
    assert safe_join(tmp_path, "a/b.jpg") == tmp_path / "a" / "b.jpg"
    monkeypatch.chdir(tmp_path)
    assert safe_join(Path("results"), "x.jpg") == Path("results/x.jpg")
    for bad in ("../x.jpg", "a/../../x.jpg", "a/../b.jpg", "/etc/passwd", "", ".", "a\0b"):
        with pytest.raises(OutputError):
            safe_join(tmp_path, bad)


def test_safe_join_refuses_a_link_that_leads_out(tmp_path):
    folder, outside = tmp_path / "out", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "inner").mkdir()
    os.symlink(outside, folder / "escape")
    os.symlink(folder / "inner", folder / "ok")
    with pytest.raises(OutputError, match="outside the output folder"):
        safe_join(folder, "escape/x.jpg")
    assert safe_join(folder, "ok/x.jpg") == folder / "ok" / "x.jpg"


# --- --on-exists -------------------------------------------------------------------------------

def test_policies_when_nothing_exists(tmp_path):
    for policy in ON_EXISTS_POLICIES:
        taken: set[Path] = set()
        assert resolve_collision(tmp_path / "a.jpg", policy, taken) == tmp_path / "a.jpg"
        assert tmp_path / "a.jpg" in taken


def test_policies_when_the_file_exists(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"old")
    assert resolve_collision(tmp_path / "a.jpg", "skip", set()) is None
    assert resolve_collision(tmp_path / "a.jpg", "overwrite", set()) == tmp_path / "a.jpg"
    assert resolve_collision(tmp_path / "a.jpg", "suffix", set()) == tmp_path / "a_0001.jpg"
    (tmp_path / "a_0001.jpg").write_bytes(b"old")
    assert resolve_collision(tmp_path / "a.jpg", "suffix", set()) == tmp_path / "a_0002.jpg"
    assert claim_output(tmp_path / "a.jpg", "skip", set()).action == "skip"
    assert claim_output(tmp_path / "a.jpg", "overwrite", set()).action == "overwrite"
    assert claim_output(tmp_path / "b.jpg", "overwrite", set()).action == "write"


def test_a_lone_sidecar_counts_for_suffix_only(tmp_path):
    (tmp_path / "a.jpg.json").write_text("{}")
    assert resolve_collision(tmp_path / "a.jpg", "suffix", set()) == tmp_path / "a_0001.jpg"
    assert resolve_collision(tmp_path / "a.jpg", "skip", set()) == tmp_path / "a.jpg"  # image missing


def test_names_without_extension_get_the_suffix_at_the_end(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    assert resolve_collision(tmp_path / "plain", "suffix", set()) == tmp_path / "plain_0001"


@pytest.mark.parametrize("policy", ON_EXISTS_POLICIES)
def test_same_title_twice_in_one_batch_gets_distinct_files_under_every_policy(tmp_path, policy):
    taken: set[Path] = set()
    got = [resolve_collision(tmp_path / "Same.jpg", policy, taken) for _ in range(3)]
    assert got == [tmp_path / "Same.jpg", tmp_path / "Same_0001.jpg", tmp_path / "Same_0002.jpg"]


def test_batch_names_differing_only_in_case_do_not_share_a_file(tmp_path):
    taken: set[Path] = set()
    assert resolve_collision(tmp_path / "Mona.jpg", "overwrite", taken) == tmp_path / "Mona.jpg"
    assert resolve_collision(tmp_path / "mona.jpg", "overwrite", taken) == tmp_path / "mona_0001.jpg"
    assert resolve_collision(tmp_path / "e\u0301.jpg", "suffix", taken) == tmp_path / "e\u0301.jpg"
    assert resolve_collision(tmp_path / "\u00c9.jpg", "suffix", taken) == tmp_path / "\u00c9_0001.jpg"


def test_paths_the_caller_put_in_taken_are_avoided(tmp_path):
    taken = {tmp_path / "x.jpg"}
    assert resolve_collision(tmp_path / "x.jpg", "overwrite", taken) == tmp_path / "x_0001.jpg"


def test_rerunning_a_batch_with_skip_maps_each_entry_to_its_file(tmp_path):
    def run(policy):
        taken: set[Path] = set()
        return [claim_output(tmp_path / "Same.jpg", policy, taken) for _ in range(2)]

    first = run("suffix")
    assert [c.path.name for c in first] == ["Same.jpg", "Same_0001.jpg"]
    first[0].path.write_bytes(b"A")  # the run was interrupted after the first entry
    again = run("skip")
    assert [(c.path.name, c.action) for c in again] == [("Same.jpg", "skip"), ("Same_0001.jpg", "write")]
    again[1].path.write_bytes(b"B")
    assert [(c.path.name, c.action) for c in run("skip")] == [("Same.jpg", "skip"), ("Same_0001.jpg", "skip")]
    assert [(c.path.name, c.action) for c in run("overwrite")] == [
        ("Same.jpg", "overwrite"), ("Same_0001.jpg", "overwrite")]
    assert [c.path.name for c in run("suffix")] == ["Same_0002.jpg", "Same_0003.jpg"]


def test_unknown_policy_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="--on-exists 'replace': expected one of skip, overwrite, suffix"):
        resolve_collision(tmp_path / "a.jpg", "replace", set())


def test_a_batch_of_hostile_duplicate_titles_writes_distinct_files_inside_the_folder(tmp_path):
    taken: set[Path] = set()
    written = []
    for title in ["../../x", "..\\..\\x", "x", "X", "x/", "CON", "con"]:
        name = render_name(DEFAULT_BULK_TEMPLATE, {"title": title, "id": "id-1"})
        path = resolve_collision(safe_join(tmp_path, name + ".png"), "suffix", taken)
        path.write_bytes(title.encode())
        written.append(path)
    assert len(set(written)) == len(written) == len(list(tmp_path.iterdir()))
    assert all(p.parent == tmp_path for p in written)
    assert [p.read_bytes() for p in written][0] == b"../../x"


def test_dots_in_titles_are_not_mistaken_for_extensions(tmp_path):
    # PR rs#197: "St. Germain..." was cut to "St.jpg" by an extension replacement.
    name = render_name("{title}", {"title": "St. Germain-des-Prés, v. 1890"})
    assert name == "St. Germain-des-Prés, v. 1890"
    path = safe_join(tmp_path, name + ".jpg")
    assert path.name == "St. Germain-des-Prés, v. 1890.jpg"
    path.write_bytes(b"x")
    assert resolve_collision(path, "suffix", set()).name == "St. Germain-des-Prés, v. 1890_0001.jpg"
