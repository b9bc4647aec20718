"""Address policy (field notes S2/S3): metadata may not send us to loopback, private or link-local hosts.

The end-to-end cases run inside a private network namespace (`unshare -rn`, see tests/netns_run.py):
a fault server on 203.0.113.7 stands for a public host, a second one on 127.0.0.1 for a service
on the user's machine, and no packet can leave the namespace.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_support import DEMO, assert_matches_source, demo_tile_paths
from dezoom_steps import hostpolicy, net
from dezoom_steps.errors import NetworkError
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from required import unavailable

HERE = Path(__file__).resolve().parent
PUBLIC = "203.0.113.7"  # TEST-NET-3: a documentation address, public as far as the policy knows


@pytest.mark.parametrize("address,cls", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("fd00::1", "private"), ("100.64.0.1", "shared (CGNAT)"), ("100.127.255.254", "shared (CGNAT)"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.1.2.3", "private"),
    ("8.8.8.8", None), ("172.32.0.1", None), ("100.128.0.1", None), (PUBLIC, None), ("2001:4860::8888", None),
])
def test_address_classes(address: str, cls: str | None) -> None:
    assert hostpolicy.address_class(ipaddress.ip_address(address)) == cls


def fake_resolver(table: dict[str, list[str]]):
    """A resolver answering from `table` (the policy's DNS step without a DNS server)."""
    return lambda host: table.get(host, [])


def test_every_address_of_a_name_is_checked() -> None:
    resolver = fake_resolver({"museum.example": ["93.184.216.34"], "sneaky.example": ["93.184.216.35", "10.0.0.7"]})
    policy = hostpolicy.AddressPolicy("https://museum.example/iiif/info.json", resolver=resolver)
    policy.check("https://museum.example/x.jpg", "museum.example")
    with pytest.raises(hostpolicy.AddressRefused, match=r"sneaky\.example \(10\.0\.0\.7\): a private address.*"
                                                        r"--allow-private-networks"):
        policy.check("https://sneaky.example/x.jpg", "sneaky.example")
    hostpolicy.AddressPolicy("https://museum.example/", allow_private=True, resolver=resolver).check(
        "https://sneaky.example/x.jpg", "sneaky.example")


def test_the_input_class_is_allowed_and_only_that_one() -> None:
    loop = hostpolicy.AddressPolicy("http://127.0.0.1:8080/info.json")
    loop.check("http://127.0.0.2/a.jpg", "127.0.0.2")
    for host, cls in (("169.254.169.254", "link-local"), ("10.0.0.1", "private"), ("100.64.1.1", "shared")):
        with pytest.raises(hostpolicy.AddressRefused, match=cls):
            loop.check(f"http://{host}/a.jpg", host)
    private = hostpolicy.AddressPolicy("http://192.168.1.20/info.json")
    private.check("http://10.9.8.7/a.jpg", "10.9.8.7")
    with pytest.raises(hostpolicy.AddressRefused, match="loopback"):
        private.check("http://127.0.0.1/a.jpg", "127.0.0.1")
    # A local input counts as loopback (the same machine), nothing more.
    local = hostpolicy.AddressPolicy("file:///data/info.json")
    local.check("http://127.0.0.1/a.jpg", "127.0.0.1")
    with pytest.raises(hostpolicy.AddressRefused):
        local.check("http://10.0.0.1/a.jpg", "10.0.0.1")


def test_remote_metadata_cannot_name_a_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    options = net.NetOptions(retries=0, input_url="https://museum.example/page")
    with pytest.raises(NetworkError, match="file: URL named by remote metadata"):
        net.fetch_document(secret.as_uri(), options)
    assert net.fetch_document(secret.as_uri(), net.NetOptions(input_url=(tmp_path / "in.json").as_uri())) == b"{}"


def test_redirect_hops_are_checked(tmp_path: Path, fault_server) -> None:  # noqa: F811
    """A redirect from a (loopback) input to a private address is refused before connecting."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.json").write_text("{}")
    srv = fault_server(root)
    options = net.NetOptions(retries=0, connect_timeout=5.0, input_url=srv.url("page"))
    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"10\.0\.0\.1: a private address"):
        net.fetch_document(srv.url("m/goto=80,gohost=10.0.0.1/a.json"), options)
    assert time.monotonic() - started < 1.0
    assert [r["status"] for r in srv.requests()] == [302]


# --- end to end, in a network namespace --------------------------------------------------------

def namespace_available() -> bool:
    """True when `unshare -rn` and `ip` work here (root or user namespaces allowed)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def netns() -> None:
    """Skip (fail under CI=true) when network namespaces cannot be created."""
    if not namespace_available():
        message = "network namespaces (unshare -rn, iproute2) are not available"
        unavailable(message)


def run_in_namespace(tmp_path: Path, servers: list[dict], commands: list[list[str]],
                     files: list[dict] | None = None) -> dict:
    """Run tests/netns_run.py in a new network namespace; returns its results."""
    plan = {"addresses": [PUBLIC], "servers": servers, "files": files or [],
            "commands": [{"args": args, "cwd": str(tmp_path / f"run{i}")} for i, args in enumerate(commands)]}
    for i in range(len(commands)):
        (tmp_path / f"run{i}").mkdir()
    plan_file, result_file = tmp_path / "plan.json", tmp_path / "result.json"
    plan_file.write_text(json.dumps(plan))
    proc = subprocess.run(["unshare", "-rn", sys.executable, str(HERE / "netns_run.py"), str(plan_file),
                           str(result_file)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(result_file.read_text())


def one_error_line(result: dict) -> str:
    """The single stderr line of a failed run (no traceback)."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert "Traceback" not in result["stderr"] and len(lines) == 1, result["stderr"]
    return lines[0]


FAST = ["--retries", "0", "--min-interval", "0", "--connect-timeout", "2s"]


def test_metadata_on_a_public_host_cannot_send_us_to_loopback(tmp_path: Path, netns) -> None:
    """Metadata on a public address naming 127.0.0.1 -> refused, no request there; the option allows it."""
    public, local = tmp_path / "public", tmp_path / "local"
    public.mkdir()
    shutil.copytree(DEMO, local / "demo")
    servers = [{"name": "pub", "host": PUBLIC, "root": str(public)},
               {"name": "loc", "host": "127.0.0.1", "root": str(local)}]
    # A viewer page on the public host whose tile source is on the user's own machine (S2).
    page = {"path": str(public / "page.html"),
            "text": '<html><body><div data-tilesource="{loc}/demo/demo.dzi"></div></body></html>'}
    # The same through a host name: the check is made on what the name resolves to.
    by_name = {"path": str(public / "named.html"),
               "text": '<html><body><div data-tilesource="http://localhost:{loc_port}/demo/demo.dzi"></div></body></html>'}
    # A bulk list downloaded from the public host is remote metadata too.
    listing = {"path": str(public / "list.txt"), "text": "{loc}/demo/demo.dzi listed\n"}
    # A IIIF collection on the public host whose member manifest is on loopback: the nested
    # document is fetched during expansion, and is checked against the collection's host.
    collection = {"path": str(public / "collection.json"),
                  "text": json.dumps({"@context": "http://iiif.io/api/presentation/3/context.json",
                                      "id": "PUB/collection.json", "type": "Collection",
                                      "label": {"en": ["c"]},
                                      "items": [{"id": "LOC/manifest.json", "type": "Manifest"}]})
                  .replace("{", "{{").replace("}", "}}").replace("PUB", "{pub}").replace("LOC", "{loc}")}
    hop = "{pub}/m/goto={loc_port},gohost=127.0.0.1/demo/demo.dzi"  # a redirect hop to 127.0.0.1
    results = run_in_namespace(tmp_path, servers, [
        ["{pub}/page.html", "out.png", *FAST],
        [hop, "out.png", *FAST],
        ["{pub}/page.html", "out.png", *FAST, "--allow-private-networks"],
        ["--bulk", "{pub}/list.txt", "--format", "png", *FAST],
        ["{pub}/named.html", "out.png", *FAST],
        ["--bulk", "{pub}/collection.json", "--format", "png", *FAST],
    ], files=[page, listing, by_name, collection])
    by_page, by_redirect, allowed, bulk, named, nested = results["results"]
    assert nested["code"] != 0 and "loopback" in nested["stdout"] + nested["stderr"], nested
    assert nested["requests"]["loc"] == [], "the nested manifest on loopback was requested"
    line = one_error_line(named)
    assert named["code"] == 4 and "localhost (" in line and "loopback" in line and named["requests"]["loc"] == []
    assert bulk["code"] != 0 and "loopback" in bulk["stdout"] and bulk["requests"]["loc"] == [], bulk
    assert not list((tmp_path / "run3").glob("*.png"))
    for refused in (by_page, by_redirect):
        line = one_error_line(refused)
        assert refused["code"] == 4, refused["stderr"]
        assert "127.0.0.1" in line and "loopback" in line and "--allow-private-networks" in line
        assert refused["requests"]["loc"] == [], "nothing reached the loopback server"
        assert refused["seconds"] < 10
    assert [r["status"] for r in by_redirect["requests"]["pub"]] == [302]
    assert allowed["code"] == 0, allowed["stderr"]
    tiles = sorted(r["path"] for r in allowed["requests"]["loc"] if "_files/" in r["path"])
    assert tiles == sorted(demo_tile_paths())
    assert_matches_source(tmp_path / "run2" / "out.png")


def test_loopback_input_cannot_reach_link_local_or_private(tmp_path: Path, netns) -> None:
    """Input on 127.0.0.1 whose metadata names 169.254.169.254 or 10.0.0.1: refused at once, no connection."""
    local = tmp_path / "local"
    local.mkdir()
    for name, target in (("meta.html", "http://169.254.169.254/latest/info.json"),
                         ("lan.html", "http://10.0.0.1:8182/iiif/2/x/info.json")):
        (local / name).write_text(f'<html><body><div data-tilesource="{target}"></div></body></html>')
    servers = [{"name": "loc", "host": "127.0.0.1", "root": str(local)}]
    results = run_in_namespace(tmp_path, servers, [
        ["{loc}/meta.html", "out.png", *FAST, "--connect-timeout", "20s"],
        ["{loc}/lan.html", "out.png", *FAST, "--connect-timeout", "20s"],
    ])
    for res, address, cls in zip(results["results"], ("169.254.169.254", "10.0.0.1"), ("link-local", "private")):
        line = one_error_line(res)
        assert res["code"] == 4 and address in line and cls in line and "--allow-private-networks" in line, line
        assert res["seconds"] < 5


REFUSE_SCRIPT = """
import json, sys, time
from dezoom_steps import net
from dezoom_steps.errors import NetworkError
options = net.NetOptions(retries=3, retry_delay=1.0, connect_timeout=5.0, input_url="http://127.0.0.1:9/page")
out = []
for url in sys.argv[1:]:
    started = time.monotonic()
    try:
        net.fetch_document(url, options)
        out.append({"url": url, "error": None, "seconds": time.monotonic() - started})
    except NetworkError as exc:
        out.append({"url": url, "error": str(exc), "seconds": time.monotonic() - started})
print(json.dumps(out))
"""


def test_refused_document_makes_no_connection_and_no_retry(tmp_path: Path, netns) -> None:
    """fetch_document refuses link-local/private hosts at once: no connection, no retry (3 allowed)."""
    urls = ["http://169.254.169.254/latest/meta-data/", "http://10.255.255.1/info.json", "http://[fe80::1]/x"]
    proc = subprocess.run(["unshare", "-rn", sys.executable, "-c", REFUSE_SCRIPT, *urls], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert proc.returncode == 0, proc.stderr
    for res in json.loads(proc.stdout):
        line = res["error"]
        assert line and line.startswith(res["url"]) and "--allow-private-networks" in line and "\n" not in line
        assert "refused to connect" in line and res["seconds"] < 0.5, res
