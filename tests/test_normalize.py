"""Input normalisation (dezoom_steps.normalize): one case per line of WRAPPERS, plus the URLs left alone."""

from __future__ import annotations

import base64
import json

import pytest

from dezoom_steps.normalize import WRAPPERS, Start, content_state_url, starts, unwrap

META = "https://iiif.example.org/iiif/2/page-7/info.json"
MANIFEST = "https://iiif.example.org/iiif/book-1/manifest.json"


def b64url(doc: dict) -> str:
    """A IIIF Content State value: JSON, base64url-encoded, padding removed (Content State API §2.3)."""
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


# One case per WRAPPERS line: (wrapper name, pasted URL, URL to start from, tried as is afterwards?)
CASES = {
    "fragment": ("https://dezoomify.ophir.dev/#" + META, META, False),
    "url parameter": ("https://dezoomify.ophir.dev/?url=https%3A%2F%2Fcdn.example.org%2Fdz%2Fharbour.dzi",
                      "https://cdn.example.org/dz/harbour.dzi", True),
    "manifest parameter": ("https://projectmirador.org/embed/?iiif-version=3&manifest=" + MANIFEST, MANIFEST, True),
    "manifest in the fragment": ("https://uv-v4.netlify.app/#?manifest=" + MANIFEST + "&cv=3", MANIFEST, False),
    "iiif-content parameter": ("https://viewer.example.org/?iiif-content=" + b64url(
        {"type": "Annotation", "motivation": ["contentState"],
         "target": {"id": "https://iiif.example.org/iiif/book-1/canvas/p2", "type": "Canvas",
                    "partOf": [{"id": MANIFEST, "type": "Manifest"}]}}), MANIFEST, True),
    "tile source parameter": ("https://example.org/osd/viewer.html?tileSources=images/harbour.dzi",
                              "https://example.org/osd/images/harbour.dzi", True),
}


def test_every_wrapper_has_a_case():
    assert sorted(CASES) == sorted(w.name for w in WRAPPERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_wrapper_is_unwrapped(name):
    pasted, inner, fallback = CASES[name]
    found = starts(pasted)
    assert found[0].url == inner
    assert found[0].source == "normalize" and inner in found[0].note
    # the wrapper itself is tried after (its server sees a query), never when it was a fragment
    assert [s.url for s in found[1:]] == ([pasted] if fallback else [])


def test_an_encoded_fragment_is_decoded():
    assert starts("https://dezoomify.ophir.dev/#https%3A%2F%2Fex.org%2Fz%2FImageProperties.xml")[0].url == \
        "https://ex.org/z/ImageProperties.xml"


def test_nested_wrappers_are_unwrapped_to_the_innermost_url():
    # the dezoomify app wrapping a Mirador link: the manifest, then the Mirador URL (a query
    # wrapper, seen by its server), never the dezoomify app URL (a fragment)
    mirador = "https://projectmirador.org/embed/?manifest=" + MANIFEST
    found = starts("https://dezoomify.ophir.dev/#" + mirador)
    assert [s.url for s in found] == [MANIFEST, mirador]
    assert found[0].kind == "manifest"


@pytest.mark.parametrize("url", [
    META,                                                     # already metadata
    "https://cdn.example.org/dz/harbour.dzi?url=https://other.example.org/x.dzi",  # a metadata URL's query
    "https://example.org/view?image=42",                      # an app's own parameter, not a URL
    "https://example.org/view?src=thumbnail.jpg",             # not metadata
    "https://example.org/page#section-2",                     # an ordinary fragment
    "https://example.org/page#javascript:alert(1)",           # another scheme
    "https://viewer.example.org/?iiif-content=not-base64-json",
])
def test_other_urls_are_left_alone(url):
    assert starts(url) == [Start(url)]
    assert unwrap(url) is None


def test_a_wrapped_url_may_not_be_a_local_file():
    url = "https://dezoomify.ophir.dev/#file:///etc/passwd"
    assert starts(url) == [Start(url)]


@pytest.mark.parametrize("value,expected", [
    (MANIFEST, MANIFEST),                                               # a plain URL
    (b64url({"id": MANIFEST, "type": "Manifest"}), MANIFEST),           # the resource itself
    (b64url({"type": "Annotation", "target": {"id": META, "type": "Image"}}), META),
    (b64url({"type": "Annotation", "target": [{"id": "ftp://x/y", "type": "Manifest"}]}), None),
])
def test_content_state_values(value, expected):
    assert content_state_url(value) == expected
