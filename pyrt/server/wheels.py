"""pyrt as a wheel for micropip, the Pyodide lock that accepts it, and the JupyterLite site.

Routes (see :func:`wheel_routes`):

- ``/wheels/pyrt-<version>-py3-none-any.whl``: pyrt built from the sources on disk, rebuilt when a
  file changes (never stale), for ``micropip.install(url)`` and PyScript's ``packages``.
  ``/wheels/`` answers JSON naming the current file and its hash.
- ``/vendor/pyodide/pyodide-lock.json``: Pyodide's lock with the real hashes of the wheels that
  ``scripts/vendor_wheels.py`` downloaded (micropip and friends) and an entry for pyrt, so
  ``loadPackage("micropip")`` and ``loadPackage("pyrt")`` work with no CDN.
- ``/vendor/pyodide/<name>.whl``: those wheels, and pyrt's.
- ``/lab/``: the JupyterLite site built by ``make notebook``, whose Pyodide gets the same live lock
  and pyrt wheel.

The wheel served here is the browser build: the ``pyrt`` package without the CPython-only
``pyrt.server`` (the same files as ``/pyrt.zip``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tomllib
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from pyrt.server.assets import PackageZip
from pyrt.server.settings import Settings

__all__ = ["PyrtWheel", "ServedLock", "wheel_routes"]

LOCK_NAME = "pyodide-lock.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same sources, same bytes, same hash
Handler = Callable[[Request], Awaitable[Response]]


class PyrtWheel:
    """A ``py3-none-any`` wheel of the ``pyrt`` sources in ``package_dir``.

    Metadata comes from ``pyproject.toml`` beside the package when there is one (a checkout),
    else from the package's ``__version__``. :meth:`build` returns the same bytes until a file
    is added, removed or changed.
    """

    def __init__(self, package_dir: Path, pyproject: Path | None = None) -> None:
        self._sources = PackageZip(package_dir)
        self._dir = package_dir
        self._pyproject = pyproject if pyproject is not None else package_dir.parent / "pyproject.toml"
        self._key: tuple[tuple[str, int, int], ...] = ()
        self._data = b""
        self._sha256 = ""
        self._filename = ""

    @property
    def filename(self) -> str:
        """``pyrt-<version>-py3-none-any.whl`` for the current sources."""
        self.build()
        return self._filename

    @property
    def sha256(self) -> str:
        """Hex sha256 of :meth:`build`'s bytes."""
        self.build()
        return self._sha256

    def project(self) -> dict[str, Any]:
        """The ``[project]`` table (only name and version when there is no pyproject.toml)."""
        if self._pyproject.is_file():
            table: dict[str, Any] = tomllib.loads(self._pyproject.read_text())["project"]
            return table
        init = (self._dir / "__init__.py").read_text()
        match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", init, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no __version__ in {self._dir / '__init__.py'}")
        return {"name": "pyrt", "version": match.group(1)}

    def build(self) -> bytes:
        """The wheel's bytes, rebuilt only when a source file or pyproject.toml changed."""
        files = self._sources.files()
        watched = [*files, self._pyproject] if self._pyproject.is_file() else files
        key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in watched)
        if key != self._key or not self._data:
            project = self.project()
            name, version = project["name"], project["version"]
            dist_info = f"{name}-{version}.dist-info"
            entries = [
                (f"{self._dir.name}/{p.relative_to(self._dir).as_posix()}", p.read_bytes()) for p in files
            ]
            entries.append((f"{dist_info}/METADATA", _metadata(project).encode()))
            entries.append((f"{dist_info}/WHEEL", _WHEEL.encode()))
            entries.append((f"{dist_info}/top_level.txt", f"{self._dir.name}\n".encode()))
            record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in entries)
            entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for arcname, data in entries:
                    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, data)
            self._data = buf.getvalue()
            self._sha256 = hashlib.sha256(self._data).hexdigest()
            self._filename = f"{name}-{version}-py3-none-any.whl"
            self._key = key
        return self._data

    def lock_entry(self) -> dict[str, Any]:
        """This wheel as a ``pyodide-lock.json`` package entry."""
        return {
            "name": "pyrt",
            "version": self.project()["version"],
            "file_name": self.filename,
            "install_dir": "site",
            "package_type": "package",
            "sha256": self.sha256,
            "imports": [self._dir.name],
            "depends": [],
            "unvendored_tests": False,
            "tool": {},
        }


_WHEEL = "Wheel-Version: 1.0\nGenerator: pyrt.server.wheels\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _metadata(project: dict[str, Any]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    if isinstance(project.get("license"), str):
        lines.append(f"License: {project['license']}")
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Project-URL: {label}, {url}" for label, url in project.get("urls", {}).items()]
    lines += [f"Requires-Dist: {req}" for req in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


class ServedLock:
    """The ``pyodide-lock.json`` to serve: the vendored one (real hashes) plus pyrt's entry.

    Falls back to the npm package's own lock when ``scripts/vendor_wheels.py`` has not run (then
    only ``loadPackage("pyrt")`` works offline, not micropip).
    """

    def __init__(self, vendored: Path, original: Path, wheel: PyrtWheel) -> None:
        self._vendored = vendored
        self._original = original
        self._wheel = wheel
        self._key: tuple[str, int, str] = ("", 0, "")
        self._data = b""

    def source(self) -> Path:
        return self._vendored if self._vendored.is_file() else self._original

    def build(self) -> bytes:
        source = self.source()
        key = (str(source), source.stat().st_mtime_ns, self._wheel.sha256)
        if key != self._key:
            lock = json.loads(source.read_text())
            lock["packages"] = {**lock["packages"], "pyrt": self._wheel.lock_entry()}
            self._data = json.dumps(lock, separators=(",", ":")).encode()
            self._key = key
        return self._data


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but ``False`` for names the system refuses (too long, bad bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _etagged(request: Request, data: bytes, media_type: str) -> Response:
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def wheel_routes(
    settings: Settings, *, cache_dir: Path | None = None, lite_dir: Path | None = None
) -> list[BaseRoute]:
    """Routes for ``/wheels/``, the vendored lock and wheels, and ``/lab/``.

    Put them before the static asset routes: they override two paths under ``/vendor/pyodide/``.
    ``cache_dir`` is where ``scripts/vendor_wheels.py`` wrote (default ``.cache/pyodide`` in the
    checkout), ``lite_dir`` the site ``make notebook`` built (default ``.cache/lite``).
    """
    root = settings.package_dir.parent
    cache_dir = cache_dir if cache_dir is not None else root / ".cache" / "pyodide"
    lite_dir = lite_dir if lite_dir is not None else root / ".cache" / "lite"
    wheel = PyrtWheel(settings.package_dir)
    lock = ServedLock(cache_dir / LOCK_NAME, settings.node_modules / "pyodide" / LOCK_NAME, wheel)

    async def wheel_index(request: Request) -> Response:
        name = wheel.filename
        return JSONResponse(
            {"pyrt": {"file_name": name, "url": f"/wheels/{name}", "sha256": wheel.sha256}},
            headers={"Cache-Control": "no-cache"},
        )

    async def pyrt_wheel(request: Request) -> Response:
        if request.path_params["filename"] != wheel.filename:
            return PlainTextResponse(f"no such wheel; this server has {wheel.filename}", status_code=404)
        return _etagged(request, wheel.build(), "application/zip")

    async def served_lock(request: Request) -> Response:
        return _etagged(request, lock.build(), "application/json")

    async def vendored_wheel(request: Request) -> Response:
        filename = request.path_params["name"] + ".whl"
        if filename == wheel.filename:
            return _etagged(request, wheel.build(), "application/zip")
        path = cache_dir / filename
        if "/" in filename or not _is_file(path):
            return PlainTextResponse(
                f"{filename} is not vendored: run `python scripts/vendor_wheels.py` (make setup)",
                status_code=404,
            )
        return Response(path.read_bytes(), media_type="application/zip")

    lab_static = StaticFiles(directory=lite_dir, html=True, check_dir=False)

    async def lab_site(request: Request) -> Response:
        if not (lite_dir / "index.html").is_file():
            return PlainTextResponse(f"{lite_dir} is not built: run `make notebook`", status_code=503)
        response: Response = await lab_static.get_response(request.path_params.get("path", ""), request.scope)
        return response

    lab = Router(
        routes=[
            Route(f"/static/pyodide/{LOCK_NAME}", served_lock),
            Route("/static/pyodide/{name}.whl", vendored_wheel),
            Route("/{path:path}", lab_site),
        ]
    )
    return [
        Route("/wheels/", wheel_index),
        Route("/wheels/{filename}", pyrt_wheel),
        Route(f"/vendor/pyodide/{LOCK_NAME}", served_lock),
        Route("/vendor/pyodide/{name}.whl", vendored_wheel),
        Mount("/lab", app=lab),
    ]
