"""A small fault-injecting HTTP server for tests, run as a subprocess on 127.0.0.1.

It serves the files of `--root`. A path of the form `/m/<spec>/<file path>` injects faults,
where `<spec>` is a comma-separated list of `key=value` items:

    fail=N          the first N requests of this exact path get `status` (default 503)
    status=S        the status used by `fail` (e.g. 429, 404, 500)
    retry_after=R   Retry-After sent with 429/503 failures (default 1; `-` sends none)
    truncate=N      the first N requests announce the full Content-Length but get half the body
    html=N          the first N requests get a 200 HTML page instead of the file
    captcha=N       the first N requests get a 200 Cloudflare-style "Just a moment..." challenge page
                    (with Retry-After only when `retry_after` is in the spec)
    sorry=N         the first N requests get a 302 to /sorry/index?continue=<url>, which answers 429
                    with an "unusual traffic" captcha page (the google.com/sorry pattern)
    empty=N         the first N requests get a 200 with an empty body
    delay=SEC       wait SEC seconds before the status line (slow first byte)
    trickle=SEC     send the body in 64-byte pieces, SEC seconds apart
    redirect=N      answer 302 to the same path with redirect=N-1 (a chain of N hops)
    goto=PORT       answer 302 to http://127.0.0.1:PORT/<file path> (another origin)
    gohost=HOST     with goto: redirect to HOST instead of 127.0.0.1 (e.g. 127.0.0.2, another host)
    need_referer=1  403 unless the request has a Referer header
    need_cookie=V   403 unless the request has the cookie `session=V`
    hold_after=K    after K requests of image files under this spec, hold each further one while
                    the file `hold_file` (default HOLD) exists in the root; a held request whose
                    client went away meanwhile is logged with status 499 and never answered

PFF servlet mode (a separate handler, see `pff_servlet`): a path whose last segment is
`pffservlet` (e.g. `/pffservlet`, `/m/fail=1/pffservlet`) answers the Zoomify PFF servlet
protocol of spec §4.7 for `?file=<path under the root>&requestType=1|2|0[&begin=B&end=E]`,
reading an emulated `.pff` file (layout in `pff_servlet`; tests/formatfixtures.py writes them).
The faults above that act before the file is read (fail, status, delay, need_*) apply to it too.

Counts are kept per exact request path (spec and query included). Every request is logged as
one JSON line (arrival time, path, status, n = its count, referer, cookie, user_agent,
client port) to
`--log`, written before the response is sent. The port is printed on stdout and, with
`--port-file`, written to that file. With `--tls-cert/--tls-key` it speaks HTTPS. Stop it by
terminating its process.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp")
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Not here</body></html>\n"
# Anti-bot pages written for these tests, shaped like the real ones (field notes N5, M19).
CAPTCHA_PAGE = (b"<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
                b"<meta http-equiv=\"refresh\" content=\"390\"></head><body><div class=\"main-wrapper\">"
                b"<h1>Checking if the site connection is secure</h1><form id=\"challenge-form\" "
                b"action=\"/?__cf_chl_f_tk=x1\" method=\"POST\"></form>"
                b"<script src=\"/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1\"></script>"
                b"</div></body></html>\n")
SORRY_PAGE = (b"<html><head><title>Sorry...</title></head><body><div id=\"captcha-form\">"
              b"<p>Our systems have detected unusual traffic from your computer network. This page checks to "
              b"see if it's really you sending the requests, and not a robot.</p>"
              b"<div class=\"g-recaptcha\" data-sitekey=\"x\"></div></div></body></html>\n")


class FaultHandler(BaseHTTPRequestHandler):
    """Serves files, applying the faults named in the path."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    server: "FaultServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Silence the default stderr log (the access log is written by `_log`)."""

    def _log(self, status: int, n: int, note: str = "") -> None:
        entry = {
            "time": self.arrived,
            "path": self.path,
            "status": status,
            "n": n,
            "note": note,
            "referer": self.headers.get("Referer"),
            "cookie": self.headers.get("Cookie"),
            "user_agent": self.headers.get("User-Agent"),
            "accept_language": self.headers.get("Accept-Language"),
            "authorization": self.headers.get("Authorization"),
            "headers": {k: v for k, v in self.headers.items()},  # every request header, as received
            "port": self.client_address[1],
        }
        self.server.write_log(entry)

    def _send(self, status: int, body: bytes, n: int, headers: dict[str, str] | None = None,
              note: str = "", length: int | None = None) -> None:
        self._log(status, n, note)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        """Answer one GET request."""
        self.arrived = time.time()
        n = self.server.count(self.path)
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        spec: dict[str, str] = {}
        raw_spec = ""
        if path.startswith("/m/"):
            _, _, raw_spec, path = path.split("/", 3) if path.count("/") >= 3 else ("", "", "", "")
            spec = dict(item.partition("=")[::2] for item in raw_spec.split(",") if item)
            path = "/" + path

        if not raw_spec and path == "/sorry/index":
            return self._send(429, SORRY_PAGE, n, {"Content-Type": "text/html; charset=UTF-8"}, note="sorry page")
        if n <= int(spec.get("captcha", 0)):
            extra = {"Retry-After": spec["retry_after"]} if "retry_after" in spec else {}
            return self._send(200, CAPTCHA_PAGE, n, {"Content-Type": "text/html; charset=UTF-8", **extra},
                              note="captcha")
        if n <= int(spec.get("sorry", 0)):
            target = f"/sorry/index?continue={quote(self.path, safe='')}"
            return self._send(302, b"", n, {"Location": target}, note="sorry")
        if spec.get("need_referer") and not self.headers.get("Referer"):
            return self._send(403, b"referer required\n", n, {"Content-Type": "text/plain"})
        if "need_cookie" in spec and f"session={spec['need_cookie']}" not in self.headers.get("Cookie", ""):
            return self._send(403, b"cookie required\n", n, {"Content-Type": "text/plain"})
        if n <= int(spec.get("fail", 0)):
            status = int(spec.get("status", 503))
            headers = {"Content-Type": "text/plain"}
            retry_after = spec.get("retry_after", "1")
            if status in (429, 503) and retry_after != "-":
                headers["Retry-After"] = retry_after
            return self._send(status, f"fault {status}\n".encode(), n, headers)
        if "hold_after" in spec and path.lower().endswith(IMAGE_EXTENSIONS):
            if self.server.count("hold:" + raw_spec) > int(spec["hold_after"]):
                flag = self.server.root / spec.get("hold_file", "HOLD")
                deadline = time.monotonic() + 120
                while flag.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self._client_gone():
                    self._log(499, n, "client gone while held")
                    self.close_connection = True
                    return None
        if "delay" in spec:
            time.sleep(float(spec["delay"]))
        if "redirect" in spec or "goto" in spec:
            return self._redirect(spec, path, parts.query, n)

        if path.rsplit("/", 1)[-1] == PFF_SERVLET:
            status, body, ctype = pff_servlet(self.server.resolve, parts.query)
            return self._send(status, body, n, {"Content-Type": ctype}, note="pff")

        file = self.server.resolve(path)
        if file is None:
            return self._send(404, b"not found\n", n, {"Content-Type": "text/plain"})
        data = file.read_bytes()
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if n <= int(spec.get("html", 0)):
            return self._send(200, HTML_PAGE, n, {"Content-Type": "text/html; charset=utf-8"}, note="html")
        if n <= int(spec.get("empty", 0)):
            return self._send(200, b"", n, {"Content-Type": ctype}, note="empty")
        if n <= int(spec.get("truncate", 0)):
            self._send(200, data[: len(data) // 2], n, {"Content-Type": ctype}, note="truncated", length=len(data))
            self.wfile.flush()
            self.close_connection = True
            return None
        if "trickle" in spec:
            self._log(200, n, "trickle")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 64):
                self.wfile.write(data[i : i + 64])
                self.wfile.flush()
                time.sleep(float(spec["trickle"]))
            return None
        return self._send(200, data, n, {"Content-Type": ctype})

    def _client_gone(self) -> bool:
        """True when the client closed its end of the connection (it was killed or gave up)."""
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _redirect(self, spec: dict[str, str], path: str, query: str, n: int) -> None:
        rest = dict(spec)
        if "goto" in rest:
            port = rest.pop("goto")
            base = f"http://{rest.pop('gohost', '127.0.0.1')}:{port}"
        else:
            base = ""
            hops = int(rest.pop("redirect")) - 1
            if hops > 0:
                rest["redirect"] = str(hops)
        spec_part = ",".join(f"{k}={v}" for k, v in rest.items())
        target = f"{base}/m/{spec_part}{path}" if spec_part else f"{base}{path}"
        if query:
            target += "?" + query
        self._send(302, b"", n, {"Location": target})


# ------------------------------------------------------------------ PFF servlet mode

PFF_SERVLET = "pffservlet"
PFF_MAGIC = b"PFF-EMULATION\x00\x00\x00"  # 16 bytes
PFF_HEADER_OFFSET = 0x424  # spec §4.7: the offset table starts at 0x424 + HEADERSIZE


def pff_servlet(resolve, query: str) -> tuple[int, bytes, str]:  # noqa: ANN001 (FaultServer.resolve)
    """(status, body, content type) of one PFF servlet request on an emulated `.pff` file.

    Emulated file layout (written by tests/formatfixtures.py; integers big-endian):
        [0, 16)                magic PFF_MAGIC
        [16, 20)               HEADERSIZE (u32)
        [0x424, 0x424+HS)      `<PFFHEADER WIDTH HEIGHT TILESIZE NUMTILES HEADERSIZE VERSION/>`, space-padded
        [T, T+8*N)             T = 0x424+HS: per tile, the file offset where it ends (u64)
        [T+8*N, ...)           the tiles, each starting where the previous one ends
    Replies: requestType=1 `Error=0&newSize=<n>&reply_data=<PFFHEADER .../>` (a file cut short
    gives a cut header; a file without the magic `Error=1`); requestType=2 the table entries in
    [begin, end) as `reply_data=<first>, <n1> <n2> ...`, tile i ending at first + n_i, with
    first = end (`head` must equal HEADERSIZE); requestType=0 the bytes [begin, end).
    """
    fields = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if "file" not in fields or not fields.get("requestType", "").isdigit():
        return 400, b"file and requestType are required\n", "text/plain"
    path = resolve("/" + fields["file"].lstrip("/"))
    if path is None:
        return 404, b"no such file\n", "text/plain"
    data = path.read_bytes()
    kind = int(fields["requestType"])
    if kind == 1:
        if not data.startswith(PFF_MAGIC) or len(data) < 20:
            return 200, b"Error=1&newSize=0&reply_data=", "text/plain"
        size = int.from_bytes(data[16:20], "big")
        header = data[PFF_HEADER_OFFSET:PFF_HEADER_OFFSET + size].rstrip(b" \x00")
        return 200, b"Error=0&newSize=%d&reply_data=%s" % (len(header), header), "text/plain"
    try:
        begin, end = int(fields["begin"]), int(fields["end"])
    except (KeyError, ValueError):
        return 400, b"begin and end are required\n", "text/plain"
    if not 0 <= begin < end <= len(data):
        return 400, b"range outside the file\n", "text/plain"
    if kind == 2:
        size = int.from_bytes(data[16:20], "big")
        if fields.get("head") != str(size) or not fields.get("vers", "").isdigit() or (end - begin) % 8:
            return 400, b"bad head, vers or range for the offset table\n", "text/plain"
        offsets = [int.from_bytes(data[i:i + 8], "big") for i in range(begin, end, 8)]
        text = f"{end}, " + " ".join(str(o - end) for o in offsets)
        return 200, f"Error=0&newSize={len(text)}&reply_data={text}".encode(), "text/plain"
    if kind == 0:
        body = data[begin:end]
        return 200, body, "image/png" if body.startswith(b"\x89PNG") else "image/jpeg"
    return 400, b"unknown requestType\n", "text/plain"


class FaultServer(ThreadingHTTPServer):
    """The threaded server: request counts per path and a thread-safe access log."""

    daemon_threads = True

    def __init__(self, root: Path, log_path: Path, host: str = "127.0.0.1"):
        super().__init__((host, 0), FaultHandler)
        self.root = root.resolve()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed at exit)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """Ignore clients that hang up early or refuse our certificate; report anything else."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ssl.SSLError)):
            super().handle_error(request, client_address)

    def count(self, path: str) -> int:
        """Count one more request of `path`; returns the new count (1 for the first)."""
        with self._lock:
            self._counts[path] += 1
            return self._counts[path]

    def write_log(self, entry: dict[str, object]) -> None:
        """Append one JSON line to the access log and flush it."""
        with self._lock:
            self._log.write(json.dumps(entry) + "\n")
            self._log.flush()

    def resolve(self, path: str) -> Path | None:
        """The file under the root that `path` names, or None (missing, or outside the root)."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate


def main() -> None:
    """Parse the arguments, report the port and serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder to serve")
    parser.add_argument("--log", type=Path, required=True, help="access log (JSON lines)")
    parser.add_argument("--port-file", type=Path, help="write the port number here")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate...")
    parser.add_argument("--tls-key", type=Path, help="...and this PEM key")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = parser.parse_args()
    server = FaultServer(args.root, args.log, args.host)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file.with_name(args.port_file.name + ".part")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(port, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
