"""The offline wheel pieces: the vendored lock's rewrite, pyrt's live wheel, the served lock, the routes."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pyrt.server.settings import Settings
from pyrt.server.wheels import PyrtWheel, ServedLock, wheel_routes
from scripts import vendor_wheels

PYPROJECT = """
[project]
name = "pyrt"
version = "9.8.7"
description = "test build"
requires-python = ">=3.11"
classifiers = ["Environment :: WebAssembly :: Emscripten"]
urls = { Source = "https://example.invalid/pyrt" }
"""


def make_wheel(path: Path, dist: str, version: str, files: dict[str, str], requires: list[str]) -> Path:
    wheel = path / f"{dist}-{version}-py3-none-any.whl"
    meta = "".join(f"Requires-Dist: {req}\n" for req in requires)
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", f"Name: {dist}\nVersion: {version}\n{meta}")
    return wheel


def lock_with(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"python": "3.14.2"}, "packages": {e["name"]: e for e in entries}}


def entry(name: str, version: str, sha: str = "0" * 64) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "file_name": f"{name}-{version}-py3-none-any.whl",
        "sha256": sha,
        "depends": [],
        "imports": [name],
        "install_dir": "site",
        "package_type": "package",
    }


@pytest.fixture
def package(tmp_path: Path) -> Path:
    pkg = tmp_path / "pyrt"
    (pkg / "server").mkdir(parents=True)
    (pkg / "browser").mkdir()
    (pkg / "__init__.py").write_text('__version__ = "9.8.7"\n')
    (pkg / "core.py").write_text("VALUE = 1\n")
    (pkg / "py.typed").write_text("")
    (pkg / "browser" / "__init__.py").write_text("")
    (pkg / "server" / "__init__.py").write_text("import starlette\n")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return pkg


# --- scripts/vendor_wheels.py ------------------------------------------------------------------


def test_a_known_package_gets_the_real_hash_and_nothing_else_changes(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "micropip", "0.11.1", {"micropip/__init__.py": ""}, [])
    lock = lock_with(entry("micropip", "0.11.1"), entry("other", "1.0"))
    before = json.dumps(lock, sort_keys=True)

    served = vendor_wheels.rewrite_lock(lock, {"micropip": wheel})

    assert served["packages"]["micropip"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert served["packages"]["other"] == lock["packages"]["other"]
    assert served["info"] == lock["info"]
    assert json.dumps(lock, sort_keys=True) == before, "the input lock was modified"


def test_a_package_missing_from_the_lock_gets_an_entry_read_from_its_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "comm",
        "0.2.3",
        {"comm/__init__.py": "", "comm/base.py": ""},
        ["traitlets>=4", "pytest ; extra == 'test'"],
    )
    served = vendor_wheels.rewrite_lock(lock_with(entry("traitlets", "5.14.3")), {"comm": wheel})

    added = served["packages"]["comm"]
    assert added["version"] == "0.2.3"
    assert added["file_name"] == wheel.name
    assert added["imports"] == ["comm"]
    assert added["depends"] == ["traitlets"]
    assert added["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_versions_come_from_the_lock_then_from_the_pinned_extras() -> None:
    lock = lock_with(
        entry("micropip", "0.11.1"), {**entry("prompt_toolkit", "3.0.52"), "name": "prompt_toolkit"}
    )
    assert vendor_wheels.pins(lock, ("micropip", "prompt-toolkit", "comm")) == {
        "micropip": "0.11.1",
        "prompt-toolkit": "3.0.52",
        "comm": vendor_wheels.EXTRA["comm"],
    }
    with pytest.raises(SystemExit, match=r"nopkg is neither in pyodide-lock\.json nor pinned"):
        vendor_wheels.pins(lock, ("nopkg",))


def test_vendoring_without_the_npm_dist_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="npm ci"):
        vendor_wheels.vendor(tmp_path / "out", tmp_path / "no-pyodide")


# --- pyrt's live wheel --------------------------------------------------------------------------


def test_the_wheel_is_named_from_pyproject_and_holds_the_client_but_not_the_server(package: Path) -> None:
    wheel = PyrtWheel(package)
    names = zipfile.ZipFile(io.BytesIO(wheel.build())).namelist()
    assert wheel.filename == "pyrt-9.8.7-py3-none-any.whl"
    assert {"pyrt/__init__.py", "pyrt/core.py", "pyrt/py.typed", "pyrt/browser/__init__.py"} <= set(names)
    assert not [name for name in names if name.startswith("pyrt/server/")]


def test_the_record_lists_every_file_with_its_hash(package: Path) -> None:
    archive = zipfile.ZipFile(io.BytesIO(PyrtWheel(package).build()))
    rows = [line.split(",") for line in archive.read("pyrt-9.8.7.dist-info/RECORD").decode().splitlines()]
    for name, digest, size in rows:
        if name.endswith("RECORD"):
            assert digest == size == ""
            continue
        data = archive.read(name)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}"
        assert int(size) == len(data)
    assert sorted(row[0] for row in rows) == sorted(archive.namelist())


def test_the_same_sources_give_the_same_bytes_and_an_edit_gives_new_ones(package: Path) -> None:
    first = PyrtWheel(package)
    assert PyrtWheel(package).sha256 == first.sha256  # deterministic: no timestamps inside
    before = first.sha256
    (package / "core.py").write_text("VALUE = 2\n")
    assert first.sha256 != before
    assert b"VALUE = 2" in zipfile.ZipFile(io.BytesIO(first.build())).read("pyrt/core.py")


def test_without_pyproject_the_version_comes_from_the_package(package: Path) -> None:
    (package.parent / "pyproject.toml").unlink()
    assert PyrtWheel(package).filename == "pyrt-9.8.7-py3-none-any.whl"


def test_pip_installs_the_served_wheel(package: Path, tmp_path: Path) -> None:
    wheel = PyrtWheel(package)
    path = tmp_path / wheel.filename
    path.write_bytes(wheel.build())
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "pyrt" / "core.py").read_text() == "VALUE = 1\n"
    metadata = (target / "pyrt-9.8.7.dist-info" / "METADATA").read_text()
    assert "Classifier: Environment :: WebAssembly :: Emscripten" in metadata
    assert "Project-URL: Source, https://example.invalid/pyrt" in metadata


# --- the served lock and the routes ----------------------------------------------------------


def test_the_served_lock_adds_pyrt_to_the_vendored_lock_or_else_the_npm_one(
    package: Path, tmp_path: Path
) -> None:
    original, vendored = tmp_path / "npm-lock.json", tmp_path / "vendored-lock.json"
    original.write_text(json.dumps(lock_with(entry("micropip", "0.11.1", "a" * 64))))
    wheel = PyrtWheel(package)
    lock = ServedLock(vendored, original, wheel)

    served = json.loads(lock.build())
    assert served["packages"]["micropip"]["sha256"] == "a" * 64
    assert served["packages"]["pyrt"]["sha256"] == hashlib.sha256(wheel.build()).hexdigest()
    assert served["packages"]["pyrt"]["file_name"] == wheel.filename

    vendored.write_text(json.dumps(lock_with(entry("micropip", "0.11.1", "b" * 64))))
    assert json.loads(lock.build())["packages"]["micropip"]["sha256"] == "b" * 64


class Client:
    """GET requests straight into the ASGI app (no socket)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, path: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                response = await http.get(path)
                await response.aread()
                return response

        # A thread of its own: another test in this process may have an event loop running.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, fetch()).result()


@pytest.fixture
def client(package: Path, tmp_path: Path) -> Client:
    node_modules = tmp_path / "node_modules"
    (node_modules / "pyodide").mkdir(parents=True)
    npm_lock = lock_with(entry("micropip", "0.11.1"))
    (node_modules / "pyodide" / "pyodide-lock.json").write_text(json.dumps(npm_lock))
    settings = Settings(package_dir=package, node_modules=node_modules, web_dir=tmp_path)
    routes = wheel_routes(settings, cache_dir=tmp_path / "cache", lite_dir=tmp_path / "lite")
    return Client(Starlette(routes=routes))


def test_the_routes_serve_the_wheel_and_say_what_is_missing(client: Client) -> None:
    index = client.get("/wheels/").json()["pyrt"]
    wheel = client.get(index["url"])
    assert wheel.status_code == 200
    assert hashlib.sha256(wheel.content).hexdigest() == index["sha256"]
    assert client.get(f"/vendor/pyodide/{index['file_name']}").content == wheel.content
    assert client.get("/wheels/pyrt-0.0.1-py3-none-any.whl").status_code == 404

    lock = client.get("/vendor/pyodide/pyodide-lock.json").json()
    assert lock["packages"]["pyrt"]["sha256"] == index["sha256"]
    assert client.get("/lab/static/pyodide/pyodide-lock.json").json() == lock

    missing = client.get("/vendor/pyodide/micropip-0.11.1-py3-none-any.whl")
    assert missing.status_code == 404
    assert "vendor_wheels.py" in missing.text
    lab = client.get("/lab/")
    assert lab.status_code == 503
    assert "make notebook" in lab.text
