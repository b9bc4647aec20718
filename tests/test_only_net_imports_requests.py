"""Design principle 2: only the net modules do HTTP; nothing else imports a network library.

dezoom_steps/net.py holds the HTTP client (documents, options, headers); dezoom_steps/netcurl.py
is its libcurl transport for tiles (issue 7). No other module imports a network library.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NETWORK_MODULES = {"requests", "urllib3", "http.client", "socket", "httpx", "aiohttp", "urllib.request", "pycurl"}
ALLOWED = {REPO / "dezoom_steps" / "net.py", REPO / "dezoom_steps" / "netcurl.py"}


def network_imports(tree: ast.AST) -> list[str]:
    """Network modules imported by a module: import statements and import_module/__import__ calls."""
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [n for n in names if any(n == m or n.startswith(m + ".") for m in NETWORK_MODULES)]
    return found


def test_the_scan_catches_every_import_form() -> None:
    code = ("import requests\nfrom http import client\nimport urllib3.util\nimportlib.import_module('socket')\n"
            "import pycurl\n")
    assert sorted(network_imports(ast.parse(code))) == ["http.client", "pycurl", "requests", "socket", "urllib3.util"]
    assert network_imports(ast.parse("import http.server\nfrom urllib.parse import urljoin\n")) == []


def test_only_net_py_imports_network_libraries() -> None:
    files = sorted((REPO / "dezoom_steps").rglob("*.py")) + sorted((REPO / "scripts").rglob("*.py"))
    assert ALLOWED <= set(files)
    offenders = {
        str(path.relative_to(REPO)): hits
        for path in files
        if path not in ALLOWED and (hits := network_imports(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}
