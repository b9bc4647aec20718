"""IIIF Presentation manifests and collections -> entries (pure): hand-written 2.1 and 3.0 documents.

The documents in tests/fixtures/manifests/ were written for these tests from the IIIF
Presentation API 2.1 and 3.0 specifications (their examples' shapes, our own content).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dezoom_steps.collections.iiif_entry import Entry, entry_title, metadata_title
from dezoom_steps.collections.iiif_manifest import (
    NotAManifest, default_name, expand, is_manifest_or_collection, kind, missing,
)
from dezoom_steps.collections.iiif_values import image_service, info_url, text
from dezoom_steps.dezoomers.base import Documents, FetchFailure
from dezoom_steps.errors import MalformedMetadata, NeedsData, NetworkError
from dezoom_steps.naming import MAX_NAME_BYTES, valid_id

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"
H = "https://iiif.example.org/iiif"
IMG = "https://images.example.org/iiif"
V2_BOOK = f"{H}/v2book/manifest"
V3_BOOK = f"{H}/v3book/manifest"
BOOK_A, BOOK_B = f"{H}/book-a/manifest", f"{H}/book-b/manifest"
BOOK_A_URLS = [f"{IMG}/book-a-1/info.json", f"{IMG}/book-a-2/info.json"]
BOOK_B_URLS = [f"{IMG}/3/book-b-1/info.json"]

# Where each fixture is "published".
PUBLISHED = {
    V2_BOOK: "v2_book.json",
    V3_BOOK: "v3_book.json",
    BOOK_A: "book_a.json",
    BOOK_B: "book_b.json",
    f"{H}/collection/two-books": "v2_collection.json",
    f"{H}/collection/two-books-v3": "v3_collection.json",
    f"{H}/collection/top": "v2_nested.json",
    f"{H}/collection/plates": "v2_plates.json",
    f"{H}/collection/by-volume": "v3_embedded.json",
    f"{H}/collection/self": "v3_self.json",
    f"{H}/collection/loop-a": "loop_a.json",
    f"{H}/collection/loop-b": "loop_b.json",
    f"{H}/collection/paged": "v2_paged.json",
    f"{H}/collection/paged-1": "v2_paged_1.json",
    f"{H}/collection/paged-2": "v2_paged_2.json",
}


def fixture(name: str) -> bytes:
    """The bytes of one fixture document."""
    return (FIXTURES / name).read_bytes()


def fetch_all(url: str, docs: Documents | None = None, store: dict[str, bytes] | None = None,
              **limits) -> tuple[list[Entry], list[list[str]]]:
    """Run the driver protocol (missing -> fetch batch -> repeat -> expand); return entries and batches.

    `store` maps URLs to bytes (default: the published fixtures); a URL outside it is a 404.
    """
    store = store if store is not None else {u: fixture(n) for u, n in PUBLISHED.items()}
    docs = docs or Documents()
    batches = []
    while urls := missing(url, docs, **limits):
        assert len(urls) == len(set(urls)), "a batch names a URL twice"
        batches.append(urls)
        assert len(batches) < 20, "the walk does not converge"
        for u in urls:
            docs.put(u, store[u] if u in store else FetchFailure("HTTP 404 Not Found"))
    return expand(url, docs, **limits), batches


def only(url: str, name: str) -> Documents:
    """A store holding one fixture at `url`."""
    return Documents({url: fixture(name)})


# ---------------------------------------------------------------------------------------------
# Presentation 2.1 manifests


def test_v2_uses_the_image_service_not_the_thumbnail_sized_resource():
    entries = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))
    first = entries[0]
    # Field notes B2: the resource @id is an 843 px rendition; the service is the full image.
    assert first.url == f"{IMG}/v2book-p1/info.json"
    assert "843" not in first.url and first.ok
    assert (first.title, first.label, first.index, first.manifest) == ("Livre d'heures", "f. 1r", 1, V2_BOOK)
    assert (first.width, first.height) == (5120, 6160)


def test_v2_service_list_skips_services_that_are_not_image_services():
    second = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))[1]
    # The physical-dimensions service comes first in the list; the trailing "/" of the id goes.
    assert second.url == f"{IMG}/v2book-p2/info.json"


def test_v2_relative_service_id_and_language_tagged_label_and_size_zero():
    third = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))[2]
    assert third.url == "https://iiif.example.org/images/v2book-p3/info.json"
    assert third.label == "folio 2 recto"  # @language "en" preferred over "fr"
    assert (third.width, third.height) == (0, 0) and third.ok  # canvas size 0 is no error


def test_v2_canvas_with_only_a_static_image_is_an_error_entry_and_the_others_run():
    entries = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))
    assert [e.index for e in entries] == [1, 2, 3, 4, 5]  # the referenced 2nd sequence adds nothing
    bad = entries[3]
    assert not bad.ok and bad.url is None
    assert bad.error.startswith(f"canvas 4 of {V2_BOOK}: no IIIF image service")
    assert "https://static.example.org/v2book/p4.jpg" in bad.error and "\n" not in bad.error
    assert bad.label == "f. 2v (photograph only)"
    assert [e.ok for e in entries] == [True, True, True, False, True]


def test_v2_choice_takes_the_default_image_and_the_manifest_thumbnail_is_never_an_entry():
    entries = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))
    assert entries[4].url == f"{IMG}/v2book-p5-color/info.json"
    assert not any("cover" in (e.url or "") or "-uv" in (e.url or "") for e in entries)


def test_v2_metadata_is_flattened_to_text_pairs():
    metadata = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))[0].metadata
    assert metadata == (
        ("Author", "Unknown illuminator"),
        ("Published", "Paris, circa 1400"),  # the "en" value of a language-tagged list
        ("Notes", "First note; Second note"),  # untagged values: all of them
        ("Source", "From: Some & Other Collection"),  # HTML reduced to its text
        ("Title", "Heures à l'usage de Rome"),
    )


# ---------------------------------------------------------------------------------------------
# Presentation 3.0 manifests


def test_v3_language_maps_and_image_service3():
    entries = expand(V3_BOOK, only(V3_BOOK, "v3_book.json"))
    first = entries[0]
    assert first.url == f"{IMG}/3/v3book-c1/info.json"
    assert first.title == "Book of Hours"  # "en" over "fr" (no "none")
    assert first.label == "1r"  # "none"
    assert entries[2].label == "Einband"  # neither none nor en: the first language given
    assert entries[3].label == "Fold-out map; closed"  # several values of one language
    assert first.metadata == (("Date", "circa 1400"), ("Shelfmark", "MS 1234"),
                              ("Provenance", "Abbaye de Cluny; Bibliothèque royale"))


def test_v3_body_with_an_image_service2_and_preference_for_image_service3():
    entries = expand(V3_BOOK, only(V3_BOOK, "v3_book.json"))
    assert entries[1].url == f"{IMG}/2/v3book-c2/info.json"  # only an ImageService2 (@id, @type)
    assert entries[2].url == f"{IMG}/3/v3book-c3/info.json"  # ImageService3 wins though listed second


def test_v3_size_zero_canvas_and_canvas_without_size():
    entries = expand(V3_BOOK, only(V3_BOOK, "v3_book.json"))
    assert (entries[1].width, entries[1].height, entries[1].ok) == (0, 0, True)
    assert (entries[5].width, entries[5].height) == (None, None)


def test_v3_painting_annotations_only_and_choice_first_item():
    entries = expand(V3_BOOK, only(V3_BOOK, "v3_book.json"))
    assert entries[3].url == f"{IMG}/3/v3book-c4-closed/info.json"
    assert not any("not-this-one" in (e.url or "") for e in entries)


def test_v3_static_image_and_sound_canvases_are_error_entries():
    entries = expand(V3_BOOK, only(V3_BOOK, "v3_book.json"))
    assert [e.ok for e in entries] == [True, True, True, True, False, False]
    assert entries[4].error == (f"canvas 5 of {V3_BOOK}: no IIIF image service "
                                "(only a static image: https://static.example.org/v3book/photo.jpg)")
    assert entries[5].error == f"canvas 6 of {V3_BOOK}: no image"


def test_a_canvas_that_is_not_an_object_is_an_error_entry():
    doc = json.loads(fixture("book_a.json"))
    doc["sequences"][0]["canvases"].insert(1, "https://iiif.example.org/iiif/book-a/canvas/x")
    entries = expand(BOOK_A, Documents({BOOK_A: json.dumps(doc).encode()}))
    assert [e.ok for e in entries] == [True, False, True]
    assert entries[1].error == f"canvas 2 of {BOOK_A}: not a JSON object"
    assert [e.index for e in entries] == [1, 2, 3]


def test_a_manifest_without_canvases_gives_one_error_entry():
    url = f"{H}/empty/manifest"
    doc = {"@context": "http://iiif.io/api/presentation/3/context.json", "id": url, "type": "Manifest",
           "label": {"en": ["Empty"]}, "items": []}
    [entry] = expand(url, Documents({url: json.dumps(doc).encode()}))
    assert entry.error == f"{url}: the manifest lists no canvases" and entry.title == "Empty"


# ---------------------------------------------------------------------------------------------
# Documents that are not manifests


@pytest.mark.parametrize("name,error,words", [
    ("viewer_page.html", NotAManifest, "an HTML page"),
    ("broken.json", MalformedMetadata, "not valid JSON"),
    ("image_info.json", NotAManifest, "image service (info.json): use it as a single image"),
])
def test_top_document_that_is_not_a_manifest_raises_one_clear_line(name, error, words):
    url = "https://iiif.example.org/iiif/something"
    with pytest.raises(error) as info:
        expand(url, only(url, name))
    message = str(info.value)
    assert message.startswith(url + ": ") and words in message and "\n" not in message
    assert info.value.exit_code == 3
    with pytest.raises(error):  # missing() says the same: nothing more can be fetched
        missing(url, only(url, name))


def test_top_document_that_could_not_be_downloaded_is_a_network_error():
    docs = Documents({BOOK_A: FetchFailure("HTTP 503 Service Unavailable")})
    with pytest.raises(NetworkError, match=re.escape(BOOK_A) + ".*503"):
        expand(BOOK_A, docs)


def test_top_document_not_fetched_yet_is_asked_for():
    with pytest.raises(NeedsData) as need:
        expand(BOOK_A, Documents())
    assert need.value.url == BOOK_A
    assert missing(BOOK_A, Documents()) == [BOOK_A]


# ---------------------------------------------------------------------------------------------
# Collections


@pytest.mark.parametrize("collection", [f"{H}/collection/two-books", f"{H}/collection/two-books-v3"])
def test_collection_of_two_manifests(collection):
    entries, batches = fetch_all(collection)
    assert batches == [[collection], [BOOK_A, BOOK_B]]  # both manifests asked for in one batch
    assert [e.url for e in entries] == BOOK_A_URLS + BOOK_B_URLS
    assert [(e.title, e.label, e.index, e.manifest) for e in entries] == [
        ("Book A", "p. 1", 1, BOOK_A), ("Book A", "p. 2", 2, BOOK_A), ("Book B", "Plate I", 1, BOOK_B)]
    assert [e.position for e in entries] == [1, 2, 3]


def test_expand_asks_for_the_first_missing_member():
    docs = only(f"{H}/collection/two-books", "v2_collection.json")
    with pytest.raises(NeedsData) as need:
        expand(f"{H}/collection/two-books", docs)
    assert need.value.url == BOOK_A


def test_a_bad_member_gives_an_error_entry_and_the_others_still_run():
    collection = f"{H}/collection/two-books"
    store = {collection: fixture("v2_collection.json"), BOOK_A: fixture("viewer_page.html")}  # BOOK_B: 404
    entries, _ = fetch_all(collection, store=store)
    assert [e.ok for e in entries] == [False, False]
    assert entries[0].error == f"{BOOK_A}: not a IIIF manifest or collection: the document is an HTML page"
    assert entries[1].error == f"{BOOK_B}: unable to download: HTTP 404 Not Found"
    assert entries[1].title == "Book B"  # the label given in the collection

    store[BOOK_A], store[BOOK_B] = fixture("broken.json"), fixture("book_b.json")
    entries, _ = fetch_all(collection, store=store)
    assert "not valid JSON" in entries[0].error and entries[0].manifest == BOOK_A
    assert [e.url for e in entries[1:]] == BOOK_B_URLS


def test_nested_collection_members_win_and_duplicates_are_expanded_once():
    top = f"{H}/collection/top"
    entries, batches = fetch_all(top)
    assert batches == [[top], [f"{H}/collection/plates", BOOK_A], [BOOK_B]]
    assert not any("not-read" in u for batch in batches for u in batch)  # 2.1: `members` wins
    # plates lists book B then book A; the top's own reference to book A adds nothing.
    assert [e.url for e in entries] == BOOK_B_URLS + BOOK_A_URLS
    assert all(e.ok for e in entries)


def test_embedded_sub_collection_is_read_in_place():
    top = f"{H}/collection/by-volume"
    entries, batches = fetch_all(top)
    assert batches == [[top], [BOOK_B, BOOK_A]]  # volume-2 is never fetched
    assert [e.url for e in entries] == BOOK_B_URLS + BOOK_A_URLS


def test_collection_that_refers_to_itself_terminates_with_an_error_entry():
    self_url = f"{H}/collection/self"
    entries, batches = fetch_all(self_url)
    assert batches == [[self_url], [BOOK_A]]
    assert entries[0].error == (f"{self_url}: collection loop (it contains itself, directly or through its "
                                "members); skipped")
    assert [e.url for e in entries[1:]] == BOOK_A_URLS


def test_collection_loop_through_a_sub_collection():
    a = f"{H}/collection/loop-a"
    entries, _ = fetch_all(a)
    assert [e.manifest for e in entries if not e.ok] == [a]
    assert "collection loop" in entries[0].error
    assert [e.url for e in entries if e.ok] == BOOK_B_URLS


def test_loop_through_a_declared_id_that_differs_from_the_fetched_url():
    # Fetched over http, the collection declares (and lists) its https id.
    url = "http://iiif.example.org/iiif/collection/self"
    entries, _ = fetch_all(url, store={url: fixture("v3_self.json"), BOOK_A: fixture("book_a.json")})
    assert "collection loop" in entries[0].error
    assert [e.url for e in entries[1:]] == BOOK_A_URLS


def chain(levels: int, typed: bool = True) -> dict[str, bytes]:
    """Collections c1 -> c2 -> ... -> c<levels>, the last one listing book B."""
    store = {BOOK_B: fixture("book_b.json")}
    for n in range(1, levels + 1):
        url = f"{H}/collection/c{n}"
        member = {"@id": f"{H}/collection/c{n + 1}", "label": f"c{n + 1}"}
        if typed:
            member["@type"] = "sc:Collection"
        body = {"@context": "http://iiif.io/api/presentation/2/context.json", "@id": url,
                "@type": "sc:Collection", "label": f"c{n}", "members": [member]}
        if n == levels:
            body["members"] = [{"@id": BOOK_B, "@type": "sc:Manifest", "label": "Book B"}]
        store[url] = json.dumps(body).encode()
    return store


@pytest.mark.parametrize("typed", [True, False])
def test_depth_limit(typed):
    store = chain(4, typed)
    top, deepest = f"{H}/collection/c1", f"{H}/collection/c4"
    entries, batches = fetch_all(top, store=store, max_depth=4)
    assert [e.url for e in entries] == BOOK_B_URLS
    entries, batches = fetch_all(top, store=store, max_depth=3)
    [entry] = entries
    assert entry.error == f"{deepest}: collection nested deeper than 3 levels (max_depth); skipped"
    assert BOOK_B not in sum(batches, [])
    assert (deepest in sum(batches, [])) == (not typed)  # a typed reference is not even fetched


def test_item_limit_in_a_manifest():
    entries = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"), max_items=3)
    assert [e.index for e in entries[:3]] == [1, 2, 3]
    assert len(entries) == 4 and not entries[3].ok
    assert entries[3].error == f"{V2_BOOK}: stopped after 3 entries (max_items); the rest is not listed"


def test_item_limit_bounds_the_documents_asked_for():
    collection = f"{H}/collection/two-books"
    entries, batches = fetch_all(collection, max_items=1)
    assert batches == [[collection], [BOOK_A]]  # book B is never fetched
    assert [e.url for e in entries[:1]] == BOOK_A_URLS[:1] and "max_items" in entries[1].error


def test_large_collection_is_fetched_in_one_batch():
    top = f"{H}/collection/big"
    urls = [f"{H}/big/{n}/manifest" for n in range(600)]
    body = {"@context": "http://iiif.io/api/presentation/3/context.json", "id": top, "type": "Collection",
            "label": {"en": ["Big"]}, "items": [{"id": u, "type": "Manifest"} for u in urls]}
    store = {top: json.dumps(body).encode(), **{u: fixture("book_b.json") for u in urls}}
    entries, batches = fetch_all(top, store=store)
    assert batches == [[top], urls]
    # Book B's declared id is the same in every copy: each copy is expanded once per URL read.
    assert len(entries) == 600 and all(e.ok for e in entries)
    assert len({default_name(e) for e in entries}) == 600


def test_paged_collection_is_read_page_after_page():
    top = f"{H}/collection/paged"
    entries, batches = fetch_all(top)
    assert batches == [[top], [f"{H}/collection/paged-1"], [BOOK_A, f"{H}/collection/paged-2"], [BOOK_B]]
    assert [e.url for e in entries] == BOOK_A_URLS + BOOK_B_URLS


def test_paged_collection_whose_pages_loop():
    store = {u: fixture(n) for u, n in PUBLISHED.items()}
    page2 = json.loads(store[f"{H}/collection/paged-2"])
    page2["next"] = {"@id": f"{H}/collection/paged-1"}
    store[f"{H}/collection/paged-2"] = json.dumps(page2).encode()
    entries, _ = fetch_all(f"{H}/collection/paged", store=store)
    assert [e.url for e in entries if e.ok] == BOOK_A_URLS + BOOK_B_URLS
    assert [e.manifest for e in entries if not e.ok] == [f"{H}/collection/paged-1"]


# ---------------------------------------------------------------------------------------------
# Sniffing


@pytest.mark.parametrize("name", ["v2_book.json", "v3_book.json", "v2_collection.json", "v3_collection.json",
                                  "v2_paged.json", "v3_embedded.json"])
def test_sniff_recognises_manifests_and_collections(name):
    assert is_manifest_or_collection(fixture(name))
    assert is_manifest_or_collection(b"\xef\xbb\xbf  \n" + fixture(name))


@pytest.mark.parametrize("data", [
    fixture("image_info.json"), fixture("viewer_page.html"), fixture("broken.json"), b"", b"[]",
    b'{"label": "Manifest of a ship", "items": []}', b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
])
def test_sniff_refuses_other_documents(data):
    assert not is_manifest_or_collection(data)


def test_kind_without_type_from_context_and_structure():
    ctx2 = "http://iiif.io/api/presentation/2/context.json"
    assert kind({"@context": ctx2, "sequences": []}) == "manifest"
    assert kind({"@context": ctx2, "manifests": []}) == "collection"
    assert kind({"@context": ctx2, "label": "x"}) is None
    assert kind({"@type": "sc:Canvas", "@context": ctx2, "sequences": []}) is None


# ---------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("value,expected", [
    ("  Plain  label ", "Plain label"),
    ({"en": ["English"], "none": ["No language"]}, "No language"),
    ({"fr": ["Français"], "en-GB": ["British"]}, "British"),
    ({"fr": ["Français"], "de": ["Deutsch"]}, "Français"),
    ({"en": ["", "  "], "fr": ["Vide en anglais"]}, "Vide en anglais"),
    ([{"@value": "Anglais", "@language": "en"}, "sans langue"], "sans langue"),
    ([{"@value": "Un", "@language": "fr"}, {"@value": "Deux", "@language": "fr"}], "Un; Deux"),
    ({"@value": "Line one\nline two", "@language": "en"}, "Line one line two"),
    ({"none": [12]}, "12"),
    (None, None), ("", None), ({"en": []}, None), (True, None),
])
def test_text_flattening(value, expected):
    assert text(value) == expected


@pytest.mark.parametrize("service,expected", [
    ({"@context": "http://iiif.io/api/image/2/context.json", "@id": "https://x.org/a"}, "https://x.org/a"),
    ({"@id": "https://x.org/b", "profile": "http://iiif.io/api/image/2/level0.json"}, "https://x.org/b"),
    ({"@id": "https://x.org/c", "profile": "http://library.stanford.edu/iiif/image-api/1.1/compliance.html#level1"},
     "https://x.org/c"),
    ([{"id": "https://x.org/auth", "type": "AuthCookieService1"}, "https://x.org/bare"], "https://x.org/bare"),
    ([{"@id": "https://x.org/any"}, {"@id": "https://x.org/v2", "@type": "ImageService2"}], "https://x.org/v2"),
    ({"@context": "http://iiif.io/api/search/0/context.json", "@id": "https://x.org/search"}, None),
    ({"type": "ImageService3"}, None),
    (None, None),
])
def test_image_service_choice(service, expected):
    assert image_service(service) == expected


def test_info_url_shapes():
    base = "https://iiif.example.org/iiif/m/manifest"
    assert info_url(base, "https://x.org/img/") == "https://x.org/img/info.json"
    assert info_url(base, "https://x.org/img/info.json") == "https://x.org/img/info.json"
    assert info_url(base, "img 1") == "https://iiif.example.org/iiif/m/img%201/info.json"
    assert (info_url(base, "http://h/fcgi-bin/iipsrv.fcgi?IIIF=a.tif")
            == "http://h/fcgi-bin/iipsrv.fcgi?IIIF=a.tif/info.json")


# ---------------------------------------------------------------------------------------------
# Titles and default names


def entry(title=None, label=None, metadata=(), index=1, position=0) -> Entry:
    """An entry with just the fields names depend on."""
    return Entry("https://x.org/i/info.json", title, label, index, "https://x.org/m", metadata, position=position)


def test_title_follows_dezoomify_rs():
    assert entry_title(entry("Book 1", "Page 1")) == "Book 1 - Page 1"
    assert entry_title(entry("Book 1", "Book 1")) == "Book 1"  # a part equal to one taken is left out
    assert entry_title(entry("Book 1", "Page 1", (("TITLE", "Book 1"),))) == "Book 1 - Page 1"
    assert entry_title(entry("Book 1", "Page 1", (("Title", "Liber I"),))) == "Book 1 - Liber I - Page 1"
    assert entry_title(entry(None, "Page 1")) == "Page 1"
    assert entry_title(entry()) is None
    assert metadata_title((("Author", "A"), ("title", "T"), ("Title", "U"))) == "T"


def test_default_name_style_and_fallback():
    assert default_name(entry("Book 1", "Page 1", position=7)) == "Book 1 - Page 1_0007"
    assert default_name(entry("Book 1", "Page 1", index=3)) == "Book 1 - Page 1_0003"
    assert default_name(entry(), index_width=2) == "image_01"
    assert default_name(entry("../..", "/")) == "image_0001"
    assert default_name(entry("Book 1", "Page 1", position=7), ascii_only=True) == "Book_1-Page_1_0007"
    assert default_name(entry("清明上河图")) == "清明上河图_0001"
    assert default_name(entry("清明上河图"), ascii_only=True) == "image_0001"


NASTY = ("Codex 🦉/Vol.\\2: " + "Ünïcödé «títle» / with | pipes ? and *stars* 📜 " * 12)[:500]


def test_default_name_of_a_long_title_with_slashes_and_emoji_is_safe():
    assert len(NASTY) == 500
    name = default_name(entry(NASTY, "f. 1r 🦉", position=12))
    assert name.endswith("_0012") and name.startswith("Codex 🦉_Vol._2_")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert not set(name) & set('/\\:|?~<>"*#%{}^`') and "\n" not in name
    name = default_name(entry(NASTY, "f. 1r", position=12), ascii_only=True)
    assert valid_id(name) and name.endswith("_0012")
    assert name.startswith("Codex_Vol._2_Unicode_title_with_pipes_and_stars_")


def test_default_names_are_unique_across_a_collection_with_equal_titles():
    a2 = "https://iiif.example.org/iiif/book-a-copy/manifest"
    store = {u: fixture(n) for u, n in PUBLISHED.items()}
    store[a2] = fixture("book_a.json").replace(b"book-a/manifest", b"book-a-copy/manifest")
    body = json.loads(store[f"{H}/collection/two-books"])
    body["manifests"].append({"@id": a2, "@type": "sc:Manifest", "label": "Book A"})
    store[f"{H}/collection/two-books"] = json.dumps(body).encode()
    entries, _ = fetch_all(f"{H}/collection/two-books", store=store)
    names = [default_name(e) for e in entries]
    assert [e.title for e in entries].count("Book A") == 4
    assert len(set(names)) == len(names) == 5


def test_entries_serialise_to_json():
    entries = expand(V2_BOOK, only(V2_BOOK, "v2_book.json"))
    data = json.loads(json.dumps([e.as_dict() for e in entries]))
    assert data[0]["metadata"][0] == ["Author", "Unknown illuminator"]
    assert data[3]["error"].startswith("canvas 4 of") and data[3]["url"] is None
    assert [d["position"] for d in data] == [1, 2, 3, 4, 5]
