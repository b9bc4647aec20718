"""Redaction of secrets in text, URLs and JSON: what dezoom-steps writes or logs never holds them.

Field notes S6/S12: users paste cookies, session signatures and URL tokens into the command
line; the tool must keep them out of logs, sidecars and Snakemake's provenance files.

In log lines and error messages (`redact_text`), three things are replaced by `REDACTED`:

* values of secret-looking query parameters (`?token=`, `X-Amz-Signature=`, `Key-Pair-Id=`...)
  and the user:password part of a URL;
* values after `Cookie:` / `Authorization:` / secret-looking header names in a line of text;
* every secret value this process resolved (from `@env:`, `@file:`, `-H`, cookies.txt, the
  input URL's secret query values), wherever it appears (`register_secret`).

Step files (`redact_json`) get only the last kind: later steps read them again and put the
input URL's real values back when they send a request (scope.restore_redacted).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

REDACTED = "REDACTED"
MIN_SECRET_LENGTH = 4  # shorter registered values would redact ordinary text

# Words that make a header or query-parameter name secret (matched as a part of the name).
_SECRET_PARTS = ("token", "secret", "passw", "signature", "credential", "session", "authoriz",
                 "oauth", "apikey", "api_key", "api-key", "cookie", "jwt", "bearer", "private")
# Words that make a name secret only as a whole word of it (X-Api-Key, Key-Pair-Id, sig, Policy).
_SECRET_WORDS = frozenset({"key", "sig", "sid", "auth", "pass", "pwd", "policy", "hmac", "hash",
                           "accesskey", "accesskeyid"})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")
# name=value in a query string (or a bare one, e.g. a level's stored `query`); the value ends at
# a separator, or at a colon that ends a word ("...?token=abc: HTTP 500").
_QUERY_PARAM = re.compile(r"(?P<lead>^|[?&;])(?P<name>[A-Za-z0-9_.~%\[\]-]+)="
                          r"(?P<value>[^&;#\s\"'<>]*?)(?=$|[&;#\s\"'<>]|:(?:\s|$))")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"'<>]+@")
_HEADER_LINE = re.compile(
    # A name is not part of a URL ("/asset/NoToken1: Unable to..." is an error line, not a header).
    r"(?P<name>(?<![/?&=.%])\b(?:proxy-authorization|authorization|set-cookie|cookie|"
    r"[A-Za-z0-9-]*(?:token|secret|signature|session|api-key|apikey)[A-Za-z0-9-]*))"
    r"(?P<sep>[\"']?\s*:\s*[\"']?)(?P<value>[^\"'\n,}]+)",
    re.IGNORECASE,
)

_HEADER_HINTS = ("cookie", "authoriz", "token", "secret", "signature", "session", "apikey", "api-key")

_secrets: set[str] = set()
_lock = threading.Lock()


def secret_name(name: str) -> bool:
    """True when a header or query-parameter name looks like it carries a secret."""
    lower = name.lower()
    if any(part in lower for part in _SECRET_PARTS):
        return True
    words = {w.lower() for w in _WORD_SPLIT.split(name) if w}
    return bool(words & _SECRET_WORDS)


def register_secret(value: str) -> None:
    """Remember a secret value so that `redact_text` replaces it wherever it appears."""
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def registered_secrets() -> frozenset[str]:
    """The secret values registered in this process."""
    with _lock:
        return frozenset(_secrets)


def redact_url(url: str) -> str:
    """`url` with secret query values and its user:password replaced by REDACTED (the rest byte for byte)."""
    url = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)
    return _QUERY_PARAM.sub(_param_sub, url)


def _param_sub(m: re.Match[str]) -> str:
    if not secret_name(m.group("name")) or not m.group("value"):
        return m.group(0)
    return f"{m.group('lead')}{m.group('name')}={REDACTED}"


def _header_sub(m: re.Match[str]) -> str:
    if m.group("value").strip() in ("", REDACTED):
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{REDACTED}"


def redact_text(text: str) -> str:
    """`text` with registered secrets, secret query values and secret header values redacted."""
    return _redact(text, _ordered_secrets())


def _ordered_secrets() -> list[str]:
    return sorted(registered_secrets(), key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    if not text:
        return text
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    if "=" in text:  # the cheap test first: step files hold many thousands of tile URLs
        text = _QUERY_PARAM.sub(_param_sub, text)
    if ":" in text and any(hint in text.lower() for hint in _HEADER_HINTS):
        text = _HEADER_LINE.sub(_header_sub, text)
    return text


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of `headers` with the values of credential and secret-looking headers redacted."""
    return {k: (REDACTED if secret_name(k) else redact_text(v)) for k, v in headers.items()}


def register_url_secrets(url: str) -> None:
    """Register the values of a URL's secret-looking query parameters and its password as secrets."""
    if not isinstance(url, str):
        return
    userinfo = _USERINFO.search(url)
    if userinfo:
        credentials = url[userinfo.end("scheme"):userinfo.end() - 1]
        register_secret(credentials.partition(":")[2] or credentials)
    for m in _QUERY_PARAM.finditer(url):
        value = m.group("value")
        if secret_name(m.group("name")) and value and value != REDACTED:
            register_secret(value)


def redact_json(value: Any) -> Any:
    """A step file's JSON with every registered secret replaced by REDACTED in its string values.

    The secret query values of the document's own `input_url` / `normalized_from` (the user's
    input) are registered first. Only registered values are replaced: step files are read
    again by later steps, which put the input URL's real values back at request time
    (scope.restore_redacted); a token that a server wrote into its own metadata is request
    data, kept as it is. When no registered secret occurs in it, `value` itself is returned.
    """
    if isinstance(value, dict):
        for key in ("input_url", "normalized_from"):
            register_url_secrets(value.get(key))
    secrets = _ordered_secrets()
    if not secrets or not _json_mentions(value, secrets):
        return value  # nothing to replace: `value` itself, not a copy of every tile
    return _redact_json(value, secrets)


def _json_mentions(value: Any, secrets: list[str]) -> bool:
    """True unless certainly no string of `value` holds one of `secrets` (one C-speed dump, then substrings).

    JSON escapes text character by character, so a secret inside a string is, escaped the same
    way, inside that string's JSON text.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # keys JSON cannot hold, or a cycle: let the walk decide
        return True
    return any(json.dumps(secret, ensure_ascii=False)[1:-1] in text for secret in secrets)


def _registered_only(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_json(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _registered_only(value, secrets)
    if isinstance(value, dict):  # keys are field or header names
        return {k: _redact_headers_field(v, secrets) if k == "headers" else _redact_json(v, secrets)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, secrets) for v in value]
    return value


def _redact_headers_field(value: Any, secrets: list[str]) -> Any:
    """A step file's level `headers`: URL values (a Referer) redacted; others are request data.

    Level headers come from metadata or a custom tiles.yaml and are sent as they are by the
    fetch step: a secret there belongs in an `@env:`/`@file:` reference, which is what is written.
    """
    if not isinstance(value, dict):
        return _redact_json(value, secrets)
    return {k: _registered_only(v, secrets) if isinstance(v, str) and v.lower().startswith(("http://", "https://"))
            else v for k, v in value.items()}


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message (installed on the log handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted form; never drops a record."""
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction() -> None:
    """Add a `RedactingFilter` to every handler of the root logger (after logging.basicConfig)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


__all__ = ["REDACTED", "RedactingFilter", "install_log_redaction", "redact_headers", "redact_json",
           "redact_text", "redact_url", "register_secret", "register_url_secrets", "registered_secrets",
           "secret_name"]
