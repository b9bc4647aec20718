"""Pytest fixture starting tests/servers/faultserver.py as a subprocess on 127.0.0.1.

Use it by importing the fixture into a test module::

    from faultserver_fixture import fault_server  # noqa: F401  (tests/ is on sys.path)

    def test_x(fault_server, tmp_path):
        srv = fault_server(tmp_path / "site")      # serves that folder
        url = srv.url("m/fail=1/a.png")            # http://127.0.0.1:<port>/m/fail=1/a.png
        ...
        assert srv.count("/m/fail=1/a.png") == 2   # requests seen, from the access log

`fault_server(root, tls=True)` serves HTTPS with a throw-away self-signed certificate.
Every server started by a test is terminated (by pid) when the test ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from required import unavailable

SERVER = Path(__file__).resolve().parent / "servers" / "faultserver.py"
START_TIMEOUT = 10.0


@dataclass
class FaultServer:
    """A running fault server: its port, folder and access log."""

    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    log: Path
    scheme: str = "http"
    host: str = "127.0.0.1"

    @property
    def base(self) -> str:
        """The server's origin, e.g. `http://127.0.0.1:41234`."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of `path` (with or without a leading slash)."""
        return f"{self.base}/{path.lstrip('/')}"

    def requests(self) -> list[dict[str, Any]]:
        """Every logged request so far, in arrival order."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def count(self, path: str) -> int:
        """How many requests of exactly `path` (e.g. `/a.png`) the server received."""
        path = "/" + path.lstrip("/")
        return sum(1 for r in self.requests() if r["path"] == path)

    def stop(self) -> None:
        """Terminate the server process (the one this fixture started) and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        message = "openssl is needed for the HTTPS fault server"
        unavailable(message)
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def start_fault_server(root: Path, workdir: Path, tls: bool = False, host: str = "127.0.0.1",
                       cert: tuple[Path, Path] | None = None) -> FaultServer:
    """Start a fault server serving `root` (HTTPS if `tls`) on `host`; port file, log and stderr go in `workdir`.

    `cert` is a (certificate, key) pair to serve instead of a fresh self-signed one.
    """
    root.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    port_file, log, errlog = workdir / "port", workdir / "access.jsonl", workdir / "stderr.txt"
    cmd = [sys.executable, str(SERVER), "--root", str(root), "--log", str(log), "--port-file", str(port_file),
           "--host", host]
    if tls:
        cert_file, key = cert or self_signed_certificate(workdir)
        cmd += ["--tls-cert", str(cert_file), "--tls-key", str(key)]
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + START_TIMEOUT
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=5)
            pytest.fail(f"the fault server did not start: {errlog.read_text()[-2000:]}")
        time.sleep(0.02)
    return FaultServer(proc, int(port_file.read_text()), root, log, "https" if tls else "http", host)


@pytest.fixture
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], FaultServer]]:
    """A factory: `fault_server(root, tls=False)` starts a server; all are stopped after the test."""
    started: list[FaultServer] = []

    def start(root: Path, tls: bool = False, host: str = "127.0.0.1",
              cert: tuple[Path, Path] | None = None) -> FaultServer:
        srv = start_fault_server(root, tmp_path_factory.mktemp("faultserver"), tls, host, cert)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
