"""netcurl's pure parts: response header parsing and URL encoding (the transfers are tested against
real servers in test_net.py, test_tls.py, test_auth.py and test_fault_matrix.py)."""

from __future__ import annotations

from dezoom_steps import netcurl


def transfer_with(*lines: str) -> netcurl.Transfer:
    """A Transfer that received these raw header lines (as libcurl hands them over)."""
    t = netcurl.Transfer(None, "http://example.org/a.jpg", 1000, "--max-tile-bytes", 5.0)
    t.lines.extend(line.encode("latin-1") for line in lines)
    return t


def test_the_last_status_block_wins_and_names_are_case_insensitive() -> None:
    t = transfer_with("HTTP/1.1 100 Continue\r\n", "\r\n", "HTTP/1.1 404 Not Found\r\n",
                      "Server: BaseHTTP/0.6 Python/3.11\r\n", "Content-Type: text/html\r\n", "\r\n")
    headers = t.headers
    assert (t.status, t.reason) == (404, "Not Found")
    assert headers["content-type"] == headers.get("Content-Type") == "text/html"
    assert "CONTENT-TYPE" in headers and "Location" not in headers
    assert headers["server"] == "BaseHTTP/0.6 Python/3.11"  # "HTTP/" inside a value is not a status line


def test_repeated_fields_are_joined_as_requests_does() -> None:
    t = transfer_with("HTTP/1.1 200 OK\r\n", "Vary: Accept\r\n", "X-A: 1\r\n", "vary: Origin\r\n", "\r\n")
    assert t.headers.get("Vary") == "Accept, Origin" and t.headers["x-a"] == "1"


def test_body_limits_stop_the_transfer() -> None:
    ok = transfer_with("HTTP/1.1 200 OK\r\n", "Content-Length: 5000\r\n", "\r\n")
    assert ok.on_body(b"x" * 10) == 0 and ok.over is not None and "5000 bytes" in ok.over
    page = transfer_with("HTTP/1.1 503 Busy\r\n", "\r\n")
    page.limit = 10
    assert page.on_body(b"y" * 70000) == 0 and page.capped and page.over is None
    assert len(page.body()) == 64 * 1024  # an error page is kept up to MAX_ERROR_BODY, not refused


def test_non_ascii_urls_are_percent_encoded() -> None:
    assert netcurl.request_target("http://example.org/a b/é.jpg?q=ü") == "http://example.org/a%20b/%C3%A9.jpg?q=%C3%BC"
    plain = "http://example.org/tiles/1_2.jpg?token=a%2Fb"
    assert netcurl.request_target(plain) is plain
