"""Recognise anti-bot pages (captcha, Cloudflare challenge, google.com/sorry) served instead of data.

Field notes §2 N5: "429 that redirects to a captcha (`google.com/sorry`) | every later image
fails | Detect it; stop the batch; report resume time"; N8: "403 'bulk download'"; M19:
"Cloudflare/anti-bot challenge ... in place of JSON or XML | Detect challenge pages by
signature; report 'blocked', not 'invalid'". Pure functions: nothing here does any I/O.
"""

from __future__ import annotations

import re
from typing import Mapping
from urllib.parse import urlsplit

SCAN_BYTES = 64 * 1024  # a challenge page says what it is in its first bytes

# Signatures that only anti-bot pages carry (lower case), with what they are.
_CHALLENGE_MARKS: tuple[tuple[str, str], ...] = (
    ("cf-chl-", "a Cloudflare challenge"),
    ("cf_chl_", "a Cloudflare challenge"),
    ("/cdn-cgi/challenge-platform/", "a Cloudflare challenge"),
    ("<title>just a moment...</title>", "a Cloudflare challenge"),
    ("<title>attention required! | cloudflare</title>", "a Cloudflare block page"),
    ("captcha-delivery.com", "a DataDome captcha"),
    ("px-captcha", "a PerimeterX captcha"),
    ("our systems have detected unusual traffic", "an \"unusual traffic\" captcha"),
    ("unusual traffic from your computer network", "an \"unusual traffic\" captcha"),
)
# Captcha widgets; on an error status they mean a challenge, on a 200 only with a telling title.
_CAPTCHA_WIDGETS = ("g-recaptcha", "www.google.com/recaptcha/", "recaptcha/api.js", "h-captcha",
                    "hcaptcha.com/1/api.js", "challenges.cloudflare.com/turnstile")
_CHALLENGE_TITLE = re.compile(
    r"<title>[^<]*(captcha|robot|verify you are human|are you human|security check|access denied|"
    r"blocked|unusual traffic|too many requests)[^<]*</title>")
# Field notes N8 (dz#44, dz#758): a 403/429 saying the IP downloaded too much.
_BAN_WORDS = ("bulk download", "too many downloads", "download limit", "daily limit",
              "temporarily blocked", "your ip", "automated requests", "automated queries")
_SORRY_PATH = re.compile(r"^/sorry(/|$)")  # google.com/sorry/index?continue=...


def challenge_kind(status: int, url: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """What anti-bot page this response is (e.g. "a Cloudflare challenge"), or None for anything else.

    `url` is the final URL (after redirects), `headers` the response headers, `body` the
    (possibly capped) body. Images are never challenge pages.
    """
    if "/sorry" in url and _SORRY_PATH.match(urlsplit(url).path or ""):
        return "a google.com/sorry \"unusual traffic\" page"
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("cf-mitigated", "").strip().lower() == "challenge":
        return "a Cloudflare challenge"
    head = body[:SCAN_BYTES]
    if not _looks_like_text(head, lowered.get("content-type", "")):
        return None
    text = head.decode("utf-8", "replace").lower()
    for mark, kind in _CHALLENGE_MARKS:
        if mark in text:
            return kind
    widget = any(w in text for w in _CAPTCHA_WIDGETS)
    if widget and (status >= 400 or _CHALLENGE_TITLE.search(text)):
        return "a captcha page"
    if status in (403, 429) and any(w in text for w in _BAN_WORDS):
        return f"a \"blocked\" page (HTTP {status})"
    return None


def _looks_like_text(head: bytes, content_type: str) -> bool:
    """True when a body is HTML or other text (not an image or binary data)."""
    ctype = content_type.lower()
    if ctype.startswith("image/"):
        return False
    if "html" in ctype or "text" in ctype or "xml" in ctype or "json" in ctype:
        return True
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"{"))


__all__ = ["SCAN_BYTES", "challenge_kind"]
