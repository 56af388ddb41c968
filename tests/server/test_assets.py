"""The server hands browsers the pinned runtime and the pyrt sources on disk, with the right types."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.assets import NPM_INSTALL, PYODIDE_VERSION, PYSCRIPT_VERSION, PackageZip, missing_runtime
from pyrt.server.settings import Settings
from tests import REPO


def test_healthz_answers_ok(pyrt_server: ServerProcess) -> None:
    response = httpx.get(pyrt_server.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "demo": True}


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/vendor/pyodide/pyodide.mjs", "text/javascript"),
        ("/vendor/pyscript/core.js", "text/javascript"),
        ("/vendor/pyscript/core.css", "text/css"),
        ("/", "text/html"),
    ],
)
def test_vendored_assets_are_served_locally_with_their_types(
    pyrt_server: ServerProcess, path: str, content_type: str
) -> None:
    response = httpx.get(pyrt_server.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)


def test_pyrt_zip_holds_the_client_sources_but_not_the_server_nor_the_pytest_plugin(
    pyrt_server: ServerProcess,
) -> None:
    response = httpx.get(pyrt_server.url + "/pyrt.zip")
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "pyrt/__init__.py" in names
    assert "pyrt/engine/backoff.py" in names
    assert "pyrt/browser/proxies.py" in names
    assert not [name for name in names if name.startswith(("pyrt/server/", "pyrt/pytest_plugin/"))]
    assert (
        zipfile.ZipFile(io.BytesIO(response.content)).read("pyrt/engine/backoff.py")
        == (REPO / "pyrt" / "engine" / "backoff.py").read_bytes()
    )


def test_pyrt_zip_is_revalidated_by_etag(pyrt_server: ServerProcess) -> None:
    first = httpx.get(pyrt_server.url + "/pyrt.zip")
    again = httpx.get(pyrt_server.url + "/pyrt.zip", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_the_zip_is_rebuilt_when_a_source_file_changes(tmp_path: Path) -> None:
    package = tmp_path / "pyrt"
    (package / "server").mkdir(parents=True)
    (package / "__init__.py").write_text("A = 1\n")
    (package / "server" / "app.py").write_text("SERVER = 1\n")
    archive = PackageZip(package)
    first = zipfile.ZipFile(io.BytesIO(archive.build()))
    assert first.namelist() == ["pyrt/__init__.py"]
    (package / "extra.py").write_text("B = 2\n")
    second = zipfile.ZipFile(io.BytesIO(archive.build()))
    assert second.namelist() == ["pyrt/__init__.py", "pyrt/extra.py"]


def test_pages_and_pyodide_come_from_the_folders_given_on_the_command_line(
    pyrt_start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    site, modules = tmp_path / "site", tmp_path / "node_modules"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>my app</title>")
    (modules / "pyodide").mkdir(parents=True)
    (modules / "pyodide" / "pyodide.mjs").write_text("export const mine = 1;")
    server = pyrt_start_server("--web-dir", str(site), "--node-modules", str(modules))
    assert "<title>my app</title>" in httpx.get(server.url + "/").text
    assert httpx.get(server.url + "/vendor/pyodide/pyodide.mjs").text == "export const mine = 1;"
    missing = httpx.get(server.url + "/vendor/pyscript/core.js")
    assert missing.status_code == 503
    assert missing.text == (
        f"{modules / '@pyscript' / 'core' / 'dist'} is missing: run `{NPM_INSTALL}` in {tmp_path}, "
        "or point --node-modules at the node_modules that has them"
    )


def test_the_pinned_runtime_versions_are_those_of_package_json() -> None:
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]
    assert pinned == {"pyodide": PYODIDE_VERSION, "@pyscript/core": PYSCRIPT_VERSION}


@pytest.mark.parametrize(
    ("checkout", "fix"),
    [
        (True, "run `npm ci` in {root} (`make setup` does it)"),
        (
            False,
            "an installed pyrt brings no Pyodide of its own. In your project, run `{npm}` and start "
            "the server with `--node-modules node_modules`",
        ),
    ],
)
def test_a_missing_runtime_names_the_fix_for_a_checkout_and_for_an_installed_package(
    tmp_path: Path, checkout: bool, fix: str
) -> None:
    root = tmp_path / "site-packages"  # where an installed pyrt's settings point by default
    root.mkdir()
    if checkout:
        (root / "package.json").write_text("{}")
    settings = Settings(node_modules=root / "node_modules")
    told = missing_runtime(root / "node_modules" / "pyodide", settings, repo_root=root)
    assert told.startswith(f"{root / 'node_modules' / 'pyodide'} is missing: ")
    assert fix.format(root=root, npm=NPM_INSTALL) in told


def test_a_server_without_pages_still_serves_pyrt(
    pyrt_start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = pyrt_start_server("--web-dir", str(tmp_path / "nothing-here"))
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/pyrt.zip").status_code == 200
    assert httpx.get(server.url + "/").status_code == 404
