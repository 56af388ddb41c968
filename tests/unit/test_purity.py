"""The decision code stays pure: only the adapters and the server touch the outside world."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pyrt"
IMPURE_PACKAGES = {"aio", "browser", "server", "cpython"}
FORBIDDEN = {"js", "pyodide", "asyncio", "time", "pyscript"}


def core_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if not IMPURE_PACKAGES.intersection(path.relative_to(PACKAGE).parts[:-1])
        and path.name != "__init__.py"
    )


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_scan_sees_the_core_modules() -> None:
    names = {path.name for path in core_modules()}
    assert "backoff.py" in names
    assert not any("server" in path.parts or "browser" in path.parts for path in core_modules())


def test_core_modules_import_nothing_that_does_io_or_reads_the_clock() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_roots(path) & FORBIDDEN)
        for path in core_modules()
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_the_scanner_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import json\nfrom time import monotonic\nimport js.foo\n")
    assert imported_roots(sample) & FORBIDDEN == {"time", "js"}
