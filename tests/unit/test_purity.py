"""The layers of docs/architecture.md, as tests: what each may import, and no import cycle.

- core (``pyrt/*.py``): decides; imports nothing that does I/O or reads the clock, and no layer
  above it;
- asyncio layer (``pyrt/aio/``): may use asyncio, never ``js``, ``pyodide``, ``websockets`` or
  ``httpx``; only ``pyrt/aio/runtime.py`` names the adapters;
- adapters (``pyrt/browser/``, ``pyrt/cpython/``): every module touches its runtime; none imports
  the asyncio layer or the other adapter;
- no module of ``pyrt`` is part of an import cycle.

Every import counts, also inside functions; only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.astscan import parse

PACKAGE = Path(__file__).resolve().parents[2] / "pyrt"
TIERS = {"aio", "browser", "server", "cpython", "pytest_plugin"}
#: The pure packages: they decide, and import nothing that does I/O or reads the clock.
PURE = (None, "wire", "session", "engine", "persist", "share", "ports", "testing")
CORE_FORBIDDEN = {"js", "pyodide", "asyncio", "time", "pyscript", "websockets", "httpx"}
AIO_FORBIDDEN = {"js", "pyodide", "pyscript", "websockets", "httpx"}
ADAPTERS = ("pyrt.browser", "pyrt.cpython")
RUNTIME_TOUCH = {
    "browser": {"js", "pyodide"},
    "cpython": {"websockets", "httpx", "os"},  # os: FileStorage, persist= as files
}


# ----------------------------------------------------------------------------------- the scanner


def _runtime_imports(tree: ast.Module, typing: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` except those under ``if TYPE_CHECKING:`` (unless ``typing``)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if not typing and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip:
            yield node


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def scan(source: str, package: str = "", typing: bool = False) -> set[str]:
    """The absolute names ``source`` imports (``from a import b`` gives ``a`` and ``a.b``);
    ``package`` resolves relative imports; ``typing`` adds those made for type checkers only."""
    names: set[str] = set()
    for node in _runtime_imports(parse(source), typing):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            anchor = parts[: len(parts) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imported_modules(path: Path, typing: bool = False) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return scan(path.read_text(encoding="utf-8"), package, typing)


def roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def pure_modules() -> list[Path]:
    """The modules of every pure package (and of the package's root)."""
    return sorted(path for tier in PURE for path in modules(tier))


def modules(tier: str | None) -> list[Path]:
    """The modules of one tier (``None``: the package's root), ``__init__`` files left out."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        here = parts[0] if len(parts) > 1 else None
        if here == tier and path.name != "__init__.py":
            found.append(path)
    return sorted(found)


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``pyrt`` modules it imports (packages' ``__init__`` included)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {imported for imported in imported_modules(path) if imported in paths and imported != name}
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# ----------------------------------------------------------------------------------- the rules


def _layers_above_core(names: set[str]) -> set[str]:
    """The names that belong to a layer above the core, matched as whole module names."""
    above = ("pyrt.aio", *ADAPTERS, "pyrt.server")
    return {name for name in names if name in above or name.startswith(tuple(f"{a}." for a in above))}


def _pyrt_layers(path: Path) -> set[str]:
    return _layers_above_core(imported_modules(path))


def test_the_scan_sees_every_tier() -> None:
    assert "backoff.py" in {path.name for path in pure_modules()}
    assert "driver.py" in {path.name for path in modules("aio")}
    assert "ws_transport.py" in {path.name for path in modules("browser")}
    assert "ws_transport.py" in {path.name for path in modules("cpython")}


def test_core_modules_import_nothing_that_does_io_or_reads_the_clock() -> None:
    found = {
        str(path.relative_to(PACKAGE)): sorted(roots(path) & CORE_FORBIDDEN)
        for path in pure_modules()
        if path.parent.name != "testing" and roots(path) & CORE_FORBIDDEN
    }
    assert found == {}


def test_opentelemetry_is_imported_only_by_its_two_opt_in_modules() -> None:
    """The engine carries a ``traceparent`` as a string: OpenTelemetry is imported by
    ``pyrt/otel.py`` (the client's helper, imported by no pyrt module) and ``pyrt/server/otel.py``
    (``serve.py --otel``) only."""
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if "opentelemetry" in roots(path)
    )
    assert importers == ["otel.py", "server/otel.py"]
    graph = import_graph()
    assert [name for name, imported in graph.items() if "pyrt.otel" in imported] == []
    assert [name for name, imported in graph.items() if "pyrt.server.otel" in imported] == [
        "pyrt.server.runtime"
    ]


def test_the_fakes_run_in_every_runtime() -> None:
    """``pyrt.testing`` may wait on asyncio (it drives clients), but ships in ``/pyrt.zip`` and
    runs on CPython too: no runtime's own library."""
    found = {
        str(path.relative_to(PACKAGE)): sorted(roots(path) & AIO_FORBIDDEN)
        for path in modules("testing")
        if roots(path) & AIO_FORBIDDEN
    }
    assert found == {}


def test_core_modules_import_no_layer_above_them() -> None:
    found = {
        str(path.relative_to(PACKAGE)): sorted(layers)
        for path in pure_modules()
        if (layers := _pyrt_layers(path))
    }
    assert found == {}


#: What each pure package may import of pyrt (besides the standard library and ``pyrt.errors``):
#: the layers of docs/architecture.md, lowest first. ``None`` is the package's root.
MAY_IMPORT: dict[str | None, set[str]] = {
    None: set(),
    "wire": {"wire"},
    "session": {"wire", "session"},
    "persist": {"wire", "persist"},
    "engine": {"wire", "persist", "engine"},
    "share": {"wire", "engine", "share"},
    "ports": {"wire", "persist", "share", "ports"},
    "testing": {"wire", "session", "persist", "engine", "share", "ports", "testing"},
}
ROOT_MODULES = {"pyrt", "pyrt.errors", "pyrt.redact"}


def _package_of(name: str) -> str | None:
    """``pyrt.wire.codec`` -> ``"wire"``; a module of the root (``pyrt.errors``) -> ``None``."""
    parts = name.split(".")
    if len(parts) < 2 or ".".join(parts[:2]) in ROOT_MODULES:
        return None
    return parts[1]


def test_each_pure_package_imports_only_the_layers_below_it() -> None:
    found = {}
    for tier, allowed in MAY_IMPORT.items():
        for path in modules(tier):
            names = {n for n in imported_modules(path) if n == "pyrt" or n.startswith("pyrt.")}
            wrong = sorted(n for n in names if (layer := _package_of(n)) is not None and layer not in allowed)
            if wrong:
                found[str(path.relative_to(PACKAGE))] = wrong
    assert found == {}


def test_the_server_speaks_through_the_wire_and_the_session_only() -> None:
    """The server shares the protocol with the clients, never their engines."""
    found = {}
    for path in modules("server"):
        names = {n for n in imported_modules(path) if n.startswith("pyrt.")}
        wrong = sorted(n for n in names if _package_of(n) not in ("wire", "session", "server", None))
        if wrong:
            found[str(path.relative_to(PACKAGE))] = wrong
    assert found == {}


#: The one module that reaches into uvicorn (docs/architecture.md, "Private APIs, fenced").
UVICORN_FENCE = "server/uvicorn_private.py"


def test_only_the_fence_reaches_into_uvicorn() -> None:
    """``uvicorn`` itself (``Server``, ``Config``) is public; its submodules, and the object behind
    an ASGI ``send``, are uvicorn's own business: only the fence touches them."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        where = str(path.relative_to(PACKAGE))
        if where == UVICORN_FENCE:
            continue
        private = sorted(n for n in imported_modules(path, typing=True) if n.startswith("uvicorn."))
        for node in ast.walk(parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr == "__self__") or (
                isinstance(node, ast.Constant) and node.value == "__self__"  # getattr(send, "__self__")
            ):
                private.append(f"__self__ (line {node.lineno})")
        if private:
            found[where] = private
    assert found == {}
    assert any(n.startswith("uvicorn.") for n in imported_modules(PACKAGE / UVICORN_FENCE))


def test_nothing_in_pyrt_imports_the_fakes() -> None:
    """``pyrt.testing`` is for tests (users' and ours): no client or server module needs it."""
    found = {
        name: sorted(i for i in imported if i.startswith("pyrt.testing"))
        for name, imported in import_graph().items()
        if not name.startswith(("pyrt.testing", "pyrt.pytest_plugin"))
        and any(i.startswith("pyrt.testing") for i in imported)
    }
    assert found == {}


def test_the_package_table_knows_every_package_of_pyrt() -> None:
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages == {p for p in MAY_IMPORT if p is not None} | TIERS


def test_package_of_reads_the_layer_from_a_module_name() -> None:
    assert _package_of("pyrt.wire.codec") == "wire"
    assert _package_of("pyrt.wire") == "wire"
    assert _package_of("pyrt.errors") is None
    assert _package_of("pyrt.errors.QueueFull") is None


def test_the_asyncio_layer_never_touches_a_runtime() -> None:
    found = {
        str(path.relative_to(PACKAGE)): sorted(roots(path) & AIO_FORBIDDEN)
        for path in modules("aio")
        if roots(path) & AIO_FORBIDDEN
    }
    assert found == {}


def test_only_the_runtime_module_names_the_adapters() -> None:
    naming = {
        path.name
        for path in modules("aio")
        if any(name.startswith(ADAPTERS) for name in imported_modules(path))
    }
    assert naming == {"runtime.py"}


def touches(path: Path, tier: str) -> bool:
    """True when ``path`` works with its runtime: it imports one of the runtime's modules (for
    type checking too: objects of the library are handed to it), or a sibling adapter module."""
    names = imported_modules(path, typing=True)
    return bool({n.split(".")[0] for n in names} & RUNTIME_TOUCH[tier]) or any(
        n.startswith(f"pyrt.{tier}.") for n in names
    )


def test_every_adapter_module_touches_its_runtime() -> None:
    found = [
        str(path.relative_to(PACKAGE))
        for tier in RUNTIME_TOUCH
        for path in modules(tier)
        if not touches(path, tier)
    ]
    assert found == []


def test_adapters_import_neither_the_asyncio_layer_nor_each_other() -> None:
    found = {}
    for tier, other in (("browser", "pyrt.cpython"), ("cpython", "pyrt.browser")):
        for path in modules(tier):
            banned = ("pyrt.aio", other, "pyrt.server")
            wrong = sorted(n for n in imported_modules(path) if n.startswith(banned))
            if wrong:
                found[str(path.relative_to(PACKAGE))] = wrong
    assert found == {}


def test_there_is_no_import_cycle_in_pyrt() -> None:
    assert cycles(import_graph()) == []


# ----------------------------------------------------------------------------- the scanner, tested


def test_the_scanner_catches_a_forbidden_import() -> None:
    found = scan("import json\nfrom time import monotonic\nimport js.foo\n")
    assert {name.split(".")[0] for name in found} & CORE_FORBIDDEN == {"time", "js"}


def test_the_scanner_sees_imports_inside_functions_but_not_type_checking_blocks() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import httpx\n"
        "def f():\n    import websockets.asyncio\n"
    )
    assert scan(source) == {"typing", "typing.TYPE_CHECKING", "websockets.asyncio"}


def test_the_scanner_resolves_relative_imports() -> None:
    assert scan("from . import states\nfrom ..x import y\n", "pyrt.aio") == {
        "pyrt.aio",
        "pyrt.aio.states",
        "pyrt.x",
        "pyrt.x.y",
    }


def test_layers_are_matched_as_whole_module_names() -> None:
    names = {"pyrt.wire.limits", "pyrt.server.app", "pyrt.server", "pyrt.aio", "pyrt.browserish"}
    assert _layers_above_core(names) == {"pyrt.server.app", "pyrt.server", "pyrt.aio"}


def test_the_cycle_finder_finds_a_cycle_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_only_the_pytest_plugin_imports_the_pytest_plugin() -> None:
    """The plugin (pyrt[testing]) never reaches a page: no client or server module depends on it."""
    plugin = "pyrt.pytest_plugin"
    found = {
        name: sorted(i for i in imported if i.startswith(plugin))
        for name, imported in import_graph().items()
        if not name.startswith(plugin) and any(i.startswith(plugin) for i in imported)
    }
    assert found == {}
    assert any(name.startswith("pyrt.pytest_plugin.") for name in import_graph())  # the scan sees it
