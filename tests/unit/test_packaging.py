"""``python -m build`` makes a pure wheel and an sdist whose client needs nothing but the stdlib."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
NAME, VERSION = PROJECT["name"], PROJECT["version"]
SERVER_ONLY = {"starlette", "uvicorn", "redis", "prometheus_client"}
PYTEST_ONLY = {"pyrt.pytest_plugin.plugin"}


def source_files() -> set[str]:
    package = REPO / "pyrt"
    return {
        path.relative_to(REPO).as_posix()
        for path in package.rglob("*")
        if path.is_file()
        and (path.suffix == ".py" or path.name == "py.typed")
        and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a copy of the tree (the checkout gets no build/ or egg-info litter)."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(REPO / "pyrt", tree / "pyrt", ignore=shutil.ignore_patterns("__pycache__"))
    out = tree / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(dist / f"{NAME}-{VERSION}-py3-none-any.whl")


@pytest.fixture(scope="module")
def metadata(wheel: zipfile.ZipFile) -> Message:
    return Parser().parsestr(wheel.read(f"{NAME}-{VERSION}.dist-info/METADATA").decode())


def test_the_build_gives_exactly_one_pure_wheel_and_one_sdist(dist: Path, wheel: zipfile.ZipFile) -> None:
    assert sorted(p.name for p in dist.iterdir()) == [
        f"{NAME}-{VERSION}-py3-none-any.whl",
        f"{NAME}-{VERSION}.tar.gz",
    ]
    tags = Parser().parsestr(wheel.read(f"{NAME}-{VERSION}.dist-info/WHEEL").decode())
    assert tags.get_all("Tag") == ["py3-none-any"]
    assert tags["Root-Is-Purelib"] == "true"


def test_the_wheel_holds_every_source_file_and_the_typed_marker(wheel: zipfile.ZipFile) -> None:
    packaged = {name for name in wheel.namelist() if not name.startswith(f"{NAME}-{VERSION}.dist-info/")}
    assert "pyrt/py.typed" in packaged
    assert packaged == source_files()


def test_the_metadata_describes_a_typed_browser_package(metadata: Message) -> None:
    classifiers = metadata.get_all("Classifier") or []
    assert "Environment :: WebAssembly :: Emscripten" in classifiers
    assert "Typing :: Typed" in classifiers
    assert metadata["Requires-Python"] == PROJECT["requires-python"]
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().strip() == (REPO / "README.md").read_text().strip()
    for label, url in PROJECT.get("urls", {}).items():
        assert f"{label}, {url}" in (metadata.get_all("Project-URL") or [])


def test_server_dependencies_are_an_extra_not_requirements(metadata: Message) -> None:
    requirements = metadata.get_all("Requires-Dist") or []
    unconditional = [req for req in requirements if "extra ==" not in req]
    assert unconditional == []
    assert "server" in (metadata.get_all("Provides-Extra") or [])
    server = [req for req in requirements if 'extra == "server"' in req]
    assert {req.split("==")[0].split("[")[0].replace("-", "_") for req in server} >= SERVER_ONLY


def test_the_sdist_rebuilds_the_same_package(dist: Path) -> None:
    with tarfile.open(dist / f"{NAME}-{VERSION}.tar.gz") as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert source_files() <= names


def test_the_client_imports_from_the_wheel_with_only_the_stdlib(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    wheel.extractall(tmp_path)
    # -I -S: no site-packages at all, so any third-party import fails. The browser adapters
    # need Pyodide (tested in Chromium), the server and pyrt.otel need their extras: left out.
    code = f"""
import importlib, pkgutil, sys
sys.path.insert(0, {str(tmp_path)!r})
import pyrt
extras = ("pyrt.server", "pyrt.browser", "pyrt.otel")
names = [m.name for m in pkgutil.walk_packages(pyrt.__path__, "pyrt.")
         if not m.name.startswith(extras) and m.name not in {PYTEST_ONLY!r}]
for name in names:
    importlib.import_module(name)
print(len(names))
try:
    import pyrt.server.app
except ModuleNotFoundError as exc:
    print("server needs", exc.name)
for name in sorted({PYTEST_ONLY!r}):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        print(name, "needs", exc.name)
"""
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    count, server, *plugin = result.stdout.splitlines()
    assert int(count) >= 1
    assert server.removeprefix("server needs ") in SERVER_ONLY
    # The plugin's parts (server process, proxy, delivery checks, waits, and the pages, which
    # import Playwright or Selenium only to launch a browser) need only the stdlib; the plugin
    # itself needs pytest.
    assert plugin == ["pyrt.pytest_plugin.plugin needs pytest"]


def test_the_pytest_plugin_is_an_entry_point_with_its_own_extra(
    wheel: zipfile.ZipFile, metadata: Message
) -> None:
    entry_points = wheel.read(f"{NAME}-{VERSION}.dist-info/entry_points.txt").decode()
    assert "[pytest11]\npyrt = pyrt.pytest_plugin.plugin" in entry_points
    requirements = metadata.get_all("Requires-Dist") or []
    testing = {req.split(";")[0].strip() for req in requirements if 'extra == "testing"' in req}
    assert {"pytest==9.2.0", "pytest-playwright==0.10.0", "playwright==1.65.2", "pyrt[server]"} <= testing
    test = {req.split(";")[0].strip() for req in requirements if 'extra == "test"' in req}
    assert "pyrt[testing]" in test  # the suite runs on the same pins as the plugin
    assert not any(req.startswith(("pytest==", "playwright==", "pytest-playwright==")) for req in test)
