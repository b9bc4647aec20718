"""Tile transfers over libcurl's multi interface: many GETs in flight, driven from one thread.

The transport under `tiledownload` (issue 7: per-request overhead in Python HTTP clients was most
of a download's time; libcurl does the protocol work in C, so one Python thread keeps sixteen
connections busy). One `Transfers` object is one connection cache: keep-alive connections are
reused across tiles. Each transfer is a single hop: a redirect comes back as its 3xx status and
`Location`, and the caller decides (address policy, per-hop headers) whether to follow it.

Failures come back as `net.AttemptFailed` worded like `net.HttpClient`'s, so retries, logs and
reports do not depend on the transport. This module and net.py are the only ones that speak HTTP.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import quote

import certifi
import pycurl

from dezoom_steps import net

_ACCEPT_ENCODING = "gzip, deflate"  # what requests asks for (and decodes), so both transports agree
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # characters of an already encoded URL that stay as they are
# libcurl error codes (curl.h) that get their own wording.
_TIMEOUT = 28
_PARTIAL = 18
_WRITE_ABORTED = 23
_BAD_URL = {1, 3}  # unsupported protocol, malformed URL
_RESOLVE = {5, 6}
_TLS = {35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98}


class ResponseHeaders(dict):
    """Response headers by lower-case name; `get`, `[]` and `in` accept any case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        """The value of header `key` (any case), or `default`."""
        return super().get(key.lower(), default)


@dataclass
class Transfer:
    """One GET in flight: what was asked, and what has arrived so far."""

    key: Any
    url: str
    limit: int
    limit_option: str
    timeout: float  # seconds this transfer may take (what is left of the request's deadline)
    named_timeout: float | None = None  # the --timeout the error message names; default `timeout`
    status: int = 0
    reason: str = ""
    lines: list[bytes] = field(default_factory=list)  # raw header lines, libcurl appends them
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)
    over: str | None = None  # why the body was refused as too large
    capped: bool = False  # an error page or redirect body cut at MAX_ERROR_BODY (not an error)
    _headers: ResponseHeaders | None = None

    @property
    def headers(self) -> ResponseHeaders:
        """The headers of the last response received (after a 100 Continue, say), parsed once."""
        if self._headers is None:
            self._headers = self._parse_headers()
        return self._headers

    def _parse_headers(self) -> ResponseHeaders:
        """Status, reason and header fields of the last response in `lines` (a repeated field's
        values joined with ", ", as requests does). One pass over one string: it runs for every tile."""
        raw = b"".join(self.lines).decode("latin-1")
        last = raw.rfind("\r\nHTTP/")  # a header line never starts so: the status line of a later response
        status_line, _, fields = (raw[last + 2:] if last >= 0 else raw).partition("\r\n")
        parts = status_line.split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.reason = parts[2].strip() if len(parts) > 2 else ""
        found: dict[str, str] = {}  # a plain dict while filling it: no case folding on each lookup
        for line in fields.split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                name, value = name.strip().lower(), value.strip()
                before = found.get(name)
                found[name] = value if before is None else f"{before}, {value}"
        return ResponseHeaders(found)

    def on_body(self, chunk: bytes) -> int | None:
        """libcurl's write callback: keep the bytes, or stop (return 0) at the size limits."""
        if self.size == 0 and not self.chunks:
            # the headers are complete when the body starts: parse them now
            headers = self._headers = self._parse_headers()
            if self.status < 300:
                declared = dict.get(headers, "content-length", "")
                encoded = dict.get(headers, "content-encoding", "identity").lower() not in ("", "identity")
                if declared.isdigit() and int(declared) > self.limit and not encoded:
                    self.over = (f"response of {declared} bytes is larger than the limit of {self.limit} bytes "
                                 f"({self.limit_option})")
                    return 0
        strict = self.status < 300
        limit = self.limit if strict else net.MAX_ERROR_BODY
        self.size += len(chunk)
        if self.size > limit:
            if strict:
                self.over = f"response larger than the limit of {limit} bytes ({self.limit_option})"
                return 0
            self.chunks.append(chunk[: len(chunk) - (self.size - limit)])
            self.capped = True
            return 0
        self.chunks.append(chunk)
        return None

    def body(self) -> bytes:
        """The bytes received."""
        return b"".join(self.chunks)


@dataclass
class Outcome:
    """A finished transfer: the response, or why there is none."""

    transfer: Transfer
    response: net.Response | None
    failure: net.AttemptFailed | None


def request_target(url: str) -> str:
    """`url` as libcurl takes it: ASCII, with other characters percent-encoded (as requests does)."""
    try:
        url.encode("ascii")
        return url
    except UnicodeEncodeError:
        return quote(url, safe=_URL_SAFE)


class Transfers:
    """Up to `slots` concurrent GETs on one libcurl multi handle; keep-alive connections reused."""

    def __init__(self, slots: int, connect_timeout: float, max_idle: int):
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAXCONNECTS, max(1, max_idle))
        self.connect_timeout = connect_timeout
        self.reuse = max_idle > 0
        self._free = [self._handle() for _ in range(max(1, slots))]
        self._busy: dict[pycurl.Curl, Transfer] = {}
        self._settings: dict[pycurl.Curl, tuple[dict[str, str], bool | str, str | None]] = {}  # last set per handle

    def _handle(self) -> pycurl.Curl:
        c = pycurl.Curl()
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.FOLLOWLOCATION, 0)  # redirects are the caller's: each hop is checked
        c.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        c.setopt(pycurl.ENCODING, _ACCEPT_ENCODING)
        c.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.connect_timeout * 1000)))
        if not self.reuse:
            c.setopt(pycurl.FORBID_REUSE, 1)
        return c

    @property
    def free(self) -> int:
        """How many more transfers may start now."""
        return len(self._free)

    @property
    def active(self) -> int:
        """How many transfers are in flight."""
        return len(self._busy)

    def start(self, transfer: Transfer, headers: dict[str, str], verify: bool | str, proxy: str | None) -> None:
        """Start `transfer` with exactly `headers`; `verify`: False, a CA bundle path, or True (certifi's)."""
        c = self._free.pop()
        c.setopt(pycurl.URL, request_target(transfer.url))
        settings = (headers, verify, proxy)
        if self._settings.get(c) != settings:  # most tiles ask exactly what the last one on this handle did
            c.setopt(pycurl.HTTPHEADER, [f"{k}: {v}".encode("latin-1") for k, v in headers.items()])
            c.setopt(pycurl.PROXY, proxy or "")  # "" also keeps libcurl from reading proxy variables itself
            c.setopt(pycurl.SSL_VERIFYPEER, 1 if verify else 0)
            c.setopt(pycurl.SSL_VERIFYHOST, 2 if verify else 0)
            c.setopt(pycurl.CAINFO, verify if isinstance(verify, str) else certifi.where())
            self._settings[c] = (dict(headers), verify, proxy)
        c.setopt(pycurl.TIMEOUT_MS, max(1, int(transfer.timeout * 1000)))
        c.setopt(pycurl.HEADERFUNCTION, transfer.lines.append)
        c.setopt(pycurl.WRITEFUNCTION, transfer.on_body)
        self._busy[c] = transfer
        self.multi.add_handle(c)

    def poll(self, wait: float, also: list[int] | None = None) -> list[Outcome]:
        """Wait up to `wait` seconds for network activity (or for a file descriptor of `also` to become
        readable), move the transfers on, return the finished ones."""
        if self._busy and wait > 0:
            if also:
                self._select(wait, also)
            else:
                self.multi.select(wait)
        while True:
            ret, _ = self.multi.perform()
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        done: list[Outcome] = []
        while True:
            queued, ok, failed = self.multi.info_read()
            for c in ok:
                done.append(self._finish(c, 0, ""))
            for c, code, message in failed:
                done.append(self._finish(c, code, message))
            if not queued:
                break
        return done

    def _select(self, wait: float, also: list[int]) -> None:
        """`multi.select`, with more file descriptors to wake up for."""
        read, write, error = self.multi.fdset()
        due_ms = self.multi.timeout()  # libcurl's own next deadline (-1: none)
        if due_ms >= 0:
            wait = min(wait, due_ms / 1000)
        select.select(read + also, write, error, wait)

    def _finish(self, c: pycurl.Curl, code: int, message: str) -> Outcome:
        transfer = self._busy.pop(c)
        self.multi.remove_handle(c)
        url = c.getinfo(pycurl.EFFECTIVE_URL) or transfer.url
        os_errno = c.getinfo(pycurl.OS_ERRNO) if code else 0
        verify_result = c.getinfo(pycurl.SSL_VERIFYRESULT) if code in _TLS else 0
        self._free.append(c)  # its callbacks still name this transfer until the next one replaces them
        headers = transfer.headers  # parsed now if no body came (sets the status too)
        failure = _failure(transfer, code, message, os_errno, verify_result)
        if failure is not None:
            return Outcome(transfer, None, failure)
        reason = net.reason_phrase(transfer.status, transfer.reason)
        return Outcome(transfer, net.Response(url, transfer.status, reason, headers, transfer.body()), None)

    def close(self) -> None:
        """End every transfer and close the connections."""
        for c in list(self._busy):
            self.multi.remove_handle(c)
            c.close()
        self._busy.clear()
        for c in self._free:
            c.close()
        self._free.clear()
        self.multi.close()


class Interrupts:
    """Ctrl-C noted while transfers run, raised by `check` from the caller's own code."""

    def __init__(self) -> None:
        self.pending = False

    def note(self, _signum: int, _frame: object) -> None:
        """The SIGINT handler: remember, do not raise (see `deferred_interrupts`)."""
        self.pending = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C came since the last check."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Interrupts]:
    """While transfers run, Ctrl-C is raised between two polls, never inside a libcurl callback.

    pycurl catches an exception raised in a callback (the write callback runs Python code for
    every chunk), prints it and fails the transfer: a KeyboardInterrupt arriving there would be
    swallowed and the run would go on. Only in the main thread, and only when SIGINT has
    Python's default handler; otherwise the handler in place is left alone.
    """
    state = Interrupts()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield state
        return
    signal.signal(signal.SIGINT, state.note)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    state.check()


def _failure(t: Transfer, code: int, message: str, os_errno: int, verify_result: int) -> net.AttemptFailed | None:
    """The failed attempt a libcurl result stands for (None: a response to use), worded as net's."""
    if t.over is not None:
        return net.AttemptFailed(t.over, status=t.status, retry=False)
    if code == 0 or (code == _WRITE_ABORTED and t.capped):
        return None
    strict = 0 < t.status < 300
    if t.status and not strict and code in (_PARTIAL, _TIMEOUT, 55, 56):
        return None  # an error page or redirect cut short: what arrived is enough to judge it
    if code == _TIMEOUT:
        named = t.named_timeout if t.named_timeout is not None else t.timeout
        return net.AttemptFailed(f"timed out after {named:g} s" + (" (body incomplete)" if t.status else ""))
    if code == _PARTIAL:
        declared = t.headers.get("content-length", "")
        if declared.isdigit():
            return net.AttemptFailed(f"truncated body: got {t.size} of {declared} bytes", status=t.status)
        return net.AttemptFailed("truncated body (the connection closed early)", status=t.status)
    if code in _TLS:
        text, permanent = net.tls_message(t.url, verify_result or None, message)
        return net.AttemptFailed(text, retry=not permanent)
    if code in _BAD_URL:
        return net.AttemptFailed(f"invalid URL ({message})", retry=False)
    why = os.strerror(os_errno) if os_errno else _plain(message)
    if t.status and strict:
        return net.AttemptFailed(f"body not received ({why})", status=t.status)
    return net.AttemptFailed(f"connection failed ({why})")


def _plain(message: str) -> str:
    """libcurl's error text, without the URL parts a redacting log would have to clean."""
    return net.short_text(message) or "no answer"


__all__ = ["Interrupts", "Outcome", "ResponseHeaders", "Transfer", "Transfers", "deferred_interrupts", "request_target"]
