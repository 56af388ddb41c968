"""Static assets: the pages, the vendored browser runtime, and pyrt itself as a zip.

``/pyrt.zip`` is built from the sources on disk (never a stale build): it is rebuilt when any
``.py`` file under the package changes, and holds everything but the CPython-only server and
pytest plugin.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pyrt.server.settings import REPO_ROOT, Settings

__all__ = ["PYODIDE_VERSION", "PYSCRIPT_VERSION", "PackageZip", "asset_routes", "missing_runtime"]

#: The browser runtime pyrt is tested with (``package.json`` of a checkout pins the same).
PYODIDE_VERSION = "314.0.7"
PYSCRIPT_VERSION = "0.7.31"
NPM_INSTALL = f"npm install pyodide@{PYODIDE_VERSION} @pyscript/core@{PYSCRIPT_VERSION}"

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")

_EXCLUDED_DIRS = {"server", "pytest_plugin", "__pycache__"}


class PackageZip:
    """The ``pyrt`` package as a zip archive whose root holds the ``pyrt/`` folder."""

    def __init__(self, package_dir: Path) -> None:
        self._dir = package_dir
        self._key: tuple[tuple[str, int, int], ...] = ()
        self._data = b""

    def files(self) -> list[Path]:
        """The files shipped to browsers, sorted."""
        return sorted(
            p
            for p in self._dir.rglob("*")
            if p.is_file()
            and (p.suffix == ".py" or p.name == "py.typed")
            and not _EXCLUDED_DIRS.intersection(p.relative_to(self._dir).parts[:-1])
        )

    def build(self) -> bytes:
        """The archive bytes, rebuilt only when a file was added, removed or changed."""
        files = self.files()
        key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        if key != self._key:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in files:
                    arcname = Path(self._dir.name) / path.relative_to(self._dir)
                    zf.writestr(str(arcname), path.read_bytes())
            self._data, self._key = buf.getvalue(), key
        return self._data


def asset_routes(settings: Settings) -> list[BaseRoute]:
    """Routes for ``/vendor/pyodide/``, ``/vendor/pyscript/``, ``/pyrt.zip`` and the pages."""
    package = PackageZip(settings.package_dir)

    async def pyrt_zip(request: Request) -> Response:
        data = package.build()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="application/zip", headers=headers)

    routes: list[BaseRoute] = [Route("/pyrt.zip", pyrt_zip)]
    vendors = {
        "/vendor/pyodide": settings.node_modules / "pyodide",
        "/vendor/pyscript": settings.node_modules / "@pyscript" / "core" / "dist",
    }
    for prefix, directory in vendors.items():
        if directory.is_dir():
            routes.append(Mount(prefix, app=StaticFiles(directory=directory)))
        else:
            routes.append(
                Route(prefix + "/{path:path}", _missing_vendor(missing_runtime(directory, settings)))
            )
    if settings.web_dir.is_dir():  # an installed pyrt has no demo pages of its own
        routes.append(Mount("/", app=StaticFiles(directory=settings.web_dir, html=True)))
    return routes


def missing_runtime(directory: Path, settings: Settings, repo_root: Path = REPO_ROOT) -> str:
    """What a request under ``/vendor/`` is told when ``directory`` is not installed: the fix
    for where this server runs. A pyrt checkout (its ``package.json`` beside the default
    ``node_modules``) installs it with ``npm ci``; anywhere else (pyrt installed from a package,
    ``--node-modules`` pointing elsewhere) the project installs it with npm and names it."""
    if settings.node_modules == repo_root / "node_modules" and (repo_root / "package.json").is_file():
        return f"{directory} is missing: run `npm ci` in {repo_root} (`make setup` does it)"
    if settings.node_modules == repo_root / "node_modules":
        return (
            f"{directory} is missing: an installed pyrt brings no Pyodide of its own. In your project, "
            f"run `{NPM_INSTALL}` and start the server with `--node-modules node_modules` "
            "(pyrt's pytest plugin passes <rootdir>/node_modules by itself when it holds Pyodide)"
        )
    return (
        f"{directory} is missing: run `{NPM_INSTALL}` in {settings.node_modules.parent}, "
        "or point --node-modules at the node_modules that has them"
    )


def _missing_vendor(text: str) -> Callable[[Request], Awaitable[Response]]:
    async def missing(request: Request) -> Response:
        return PlainTextResponse(text, status_code=503)

    return missing
