"""TLS options (field notes N7, S8): --insecure-host for one host, --ca-bundle, errors that say which host and why.

Certificates are made here with the openssl command: a private CA, a leaf it signed for
127.0.0.1, an expired leaf, a leaf for another name, and the fault server's self-signed one.
The fault server speaks HTTPS with them on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dezoom_steps import net
from dezoom_steps.errors import InputError, NetworkError
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from required import unavailable

BODY = b'{"ok": true}'


def openssl(*args: str, cwd: Path) -> None:
    """Run one openssl command (fail with its stderr)."""
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"openssl {' '.join(args)}: {proc.stderr[-1500:]}"


CA_CONFIG = """[ ca ]
default_ca = test_ca
[ test_ca ]
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[ any_name ]
commonName = supplied
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path] | Path]:
    """A private CA and leaves: good (127.0.0.1), expired, wrong name; name -> (cert, key), 'ca' -> CA cert."""
    if shutil.which("openssl") is None:
        message = "openssl is needed to make the test certificates"
        unavailable(message)
    d = tmp_path_factory.mktemp("pki")
    (d / "issued").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(CA_CONFIG)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Dezoom Test Root CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    leaves = {"good": ("IP:127.0.0.1", None), "expired": ("IP:127.0.0.1", ("20200101000000Z", "20200201000000Z")),
              "wrongname": ("DNS:museum.example", None)}
    out: dict[str, tuple[Path, Path] | Path] = {"ca": d / "ca.pem"}
    for name, (san, dates) in leaves.items():
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        validity = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "2"]
        openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                "-in", f"{name}.csr", "-out", f"{name}.pem", *validity, cwd=d)
        out[name] = (d / f"{name}.pem", d / f"{name}.key")
    return out


def serve(fault_server, tmp_path: Path, cert: tuple[Path, Path] | None = None):  # noqa: F811
    """An HTTPS fault server on 127.0.0.1 with `cert` (default: a fresh self-signed one)."""
    root = tmp_path / "site"
    root.mkdir(exist_ok=True)
    (root / "info.json").write_bytes(BODY)
    return fault_server(root, tls=True, cert=cert)


def error_of(url: str, **options) -> str:
    """The NetworkError line of fetching `url` with `options`."""
    with pytest.raises(NetworkError) as err:
        net.fetch_document(url, net.NetOptions(retries=2, retry_delay=0.01, min_interval=0, **options))
    line = str(err.value)
    assert "\n" not in line and line.startswith(url)
    return line


def test_self_signed_and_insecure_host(tmp_path: Path, fault_server) -> None:  # noqa: F811
    srv = serve(fault_server, tmp_path)
    url = srv.url("info.json")
    line = error_of(url)
    assert "TLS error with 127.0.0.1: its certificate is self-signed" in line and "--insecure-host 127.0.0.1" in line
    assert srv.requests() == []  # no request got through, and a certificate error is not retried
    assert "TLS error" in error_of(url, insecure_hosts=("museum.example",))  # another host's exemption: no effect
    assert net.fetch_document(url, net.NetOptions(insecure_hosts=("127.0.0.1",), retries=0)) == BODY
    assert net.fetch_document(url, net.NetOptions(accept_invalid_certs=True, retries=0)) == BODY


def test_private_ca_needs_the_bundle(tmp_path: Path, fault_server, pki) -> None:  # noqa: F811
    srv = serve(fault_server, tmp_path, pki["good"])
    url = srv.url("info.json")
    assert "TLS error with 127.0.0.1: its certificate was issued by an unknown certificate authority" in error_of(url)
    assert net.fetch_document(url, net.NetOptions(ca_bundle=str(pki["ca"]), retries=0)) == BODY


def test_expired_certificate(tmp_path: Path, fault_server, pki) -> None:  # noqa: F811
    srv = serve(fault_server, tmp_path, pki["expired"])
    line = error_of(srv.url("info.json"), ca_bundle=str(pki["ca"]))
    assert "TLS error with 127.0.0.1: its certificate has expired" in line


def test_certificate_for_another_name(tmp_path: Path, fault_server, pki) -> None:  # noqa: F811
    srv = serve(fault_server, tmp_path, pki["wrongname"])
    line = error_of(srv.url("info.json"), ca_bundle=str(pki["ca"]))
    assert "TLS error with 127.0.0.1: its certificate does not match the IP address" in line


def test_tiles_over_tls_with_the_bundle(tmp_path: Path, fault_server, pki) -> None:  # noqa: F811
    """The tile path (HttpClient.get through download_tiles) uses the same verification settings."""
    from dezoom_steps import tiledownload
    from dezoom_steps.model import TileRef

    srv = serve(fault_server, tmp_path, pki["good"])
    from PIL import Image
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "site" / "t.png")
    tile = TileRef(index=0, col=0, row=0, url=srv.url("t.png"), x=0, y=0, w=8, h=8)
    for options, ok in ((net.NetOptions(retries=0, min_interval=0), False),
                        (net.NetOptions(retries=0, min_interval=0, ca_bundle=str(pki["ca"])), True)):
        (res,) = tiledownload.download_tiles([tile], options, net.build_headers(options))
        assert res.ok is ok, res.error
        if not ok:
            assert "unknown certificate authority" in (res.error or "")


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.pem: no such CA bundle file \(--ca-bundle\)"):
        net.NetOptions(ca_bundle=str(tmp_path / "nope.pem"))
