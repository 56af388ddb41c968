"""Bytecode for the browser: pyrt compiled by Pyodide's own Python, so pages skip compiling it.

Pyodide compiles every module it imports from source, and for pyrt that was most of the time
between ``import pyrt`` and a connected client. Bytecode has to come from the same Python minor
version as the page (the ``.pyc`` magic number), and the server runs on another one, so the
compiler here is Pyodide itself, the one in ``node_modules`` that the pages load, run by Node.js:
one ``node`` process compiles every file of a build into checked hash-based ``.pyc`` files
(PEP 552: the importer checks each against its source's hash, so an edited source is compiled
again, never run stale), laid out as ``__pycache__/<name>.cpython-3XY.pyc`` beside the sources.

Compiling boots Pyodide (seconds), so it runs in a thread and its result is kept on disk, keyed
by the Pyodide version and the sources' bytes: a server restarted on the same sources finds it
at once. Until a build's bytecode is ready (or where there is no ``node`` on the ``PATH``),
:meth:`PyodideBytecode.get` answers ``None`` and the archive holds sources only, which work the
same, only slower to import.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PyodideBytecode", "default_cache_dir"]

log = logging.getLogger("pyrt.server.bytecode")

#: Bumped when the script's output changes, so older cache entries are not reused.
FORMAT = "1"

#: Cache entries kept (the newest).
KEEP = 8

#: Run by ``node --input-type=module -e``: argv[1] is Pyodide's folder; stdin a zip of sources;
#: stdout a zip of their ``.pyc`` files (checked hash-based, at their ``cache_from_source`` paths).
_SCRIPT = r"""
import { pathToFileURL } from "node:url";
const dir = process.argv[1].replace(/\/?$/, "/");
const { loadPyodide } = await import(pathToFileURL(dir + "pyodide.mjs").href);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const pyodide = await loadPyodide({ indexURL: dir, stdout: () => {}, stderr: (line) => console.error(line) });
pyodide.FS.writeFile("/tmp/sources.zip", Buffer.concat(chunks));
pyodide.runPython(`
import importlib.util, io, zipfile
from importlib._bootstrap_external import _code_to_hash_pyc
out = io.BytesIO()
with zipfile.ZipFile("/tmp/sources.zip") as sources, zipfile.ZipFile(out, "w") as pycs:
    for name in sources.namelist():
        if name.endswith(".py"):
            source = sources.read(name)
            code = compile(source, name, "exec", dont_inherit=True)
            pyc = _code_to_hash_pyc(code, importlib.util.source_hash(source), True)
            pycs.writestr(importlib.util.cache_from_source(name), pyc)
with open("/tmp/pycs.zip", "wb") as f:
    f.write(out.getvalue())
`);
process.stdout.write(pyodide.FS.readFile("/tmp/pycs.zip"));
"""


def _abandoned(claim: Path, timeout: float) -> bool:
    try:
        if time.time() - claim.stat().st_mtime > timeout:
            return True
        pid = int(claim.read_text() or 0)
    except (OSError, ValueError):
        return False  # being written: its process is alive
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pyrt/bytecode``, or ``~/.cache/pyrt/bytecode``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyrt" / "bytecode"


class PyodideBytecode:
    """Compiles sources to Pyodide's bytecode in the background and remembers the result.

    ``pyodide_dir`` is the folder with ``pyodide.mjs`` (``node_modules/pyodide``); ``node`` the
    Node.js binary (default: ``node`` on the ``PATH``; none: never any bytecode). Thread-safe.
    """

    def __init__(
        self,
        pyodide_dir: Path,
        cache_dir: Path | None = None,
        node: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        self._pyodide = pyodide_dir
        self._cache = cache_dir if cache_dir is not None else default_cache_dir()
        self._node = node if node is not None else shutil.which("node")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._done: dict[str, dict[str, bytes]] = {}
        self._running: dict[str, threading.Thread] = {}
        self._failed: set[str] = set()

    @property
    def available(self) -> bool:
        """Whether bytecode can be made here: ``node`` and Pyodide are both installed."""
        return self._node is not None and (self._pyodide / "pyodide.mjs").is_file()

    def key(self, sources: Mapping[str, bytes]) -> str:
        """What a build's bytecode depends on: Pyodide's version, this module's format, the
        sources' names and bytes."""
        digest = hashlib.sha256(f"{FORMAT}\0{self._version()}\0".encode())
        for name in sorted(sources):
            digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name]).digest())
        return digest.hexdigest()[:40]

    def get(self, sources: Mapping[str, bytes]) -> dict[str, bytes] | None:
        """The ``.pyc`` files of ``sources`` (archive name -> bytes) if they are ready; else
        ``None``, and a compile starts in the background unless one runs (here or in another
        server process on the same cache) or failed."""
        if not self.available:
            return None
        key = self.key(sources)
        with self._lock:
            if key in self._done:
                return self._done[key]
            if key in self._running or key in self._failed:
                return None
        cached = self._read_cache(key)
        with self._lock:
            if cached is not None:
                self._done[key] = cached
                return cached
            if key not in self._running and key not in self._failed and self._claim(key):
                thread = threading.Thread(
                    target=self._compile, args=(key, dict(sources)), name="pyrt-bytecode", daemon=True
                )
                self._running[key] = thread
                thread.start()
        return None

    def wait(self, sources: Mapping[str, bytes], timeout: float) -> dict[str, bytes] | None:
        """:meth:`get`, polling for up to ``timeout`` seconds while a compile runs."""
        deadline = time.monotonic() + timeout
        key = self.key(sources)
        while True:
            found = self.get(sources)
            with self._lock:
                failed = key in self._failed
            if found is not None or failed or not self.available or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    # ------------------------------------------------------------------------------ internals

    def _version(self) -> str:
        try:
            return str(json.loads((self._pyodide / "package.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            return "unknown"

    def _read_cache(self, key: str) -> dict[str, bytes] | None:
        try:
            with zipfile.ZipFile(self._cache / f"{key}.zip") as archive:
                return {name: archive.read(name) for name in archive.namelist()}
        except (OSError, zipfile.BadZipFile):
            return None

    def _claim(self, key: str) -> bool:
        """Whether this process compiles ``key``: one server process of many sharing the cache
        does (``--workers``). A claim whose process is gone, or older than the timeout, was
        abandoned (a server stopped while compiling)."""
        claim = self._cache / f"{key}.compiling"
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
            if claim.exists() and _abandoned(claim, self._timeout):
                claim.unlink(missing_ok=True)
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        except OSError:
            return True  # no cache to share: compile for this process alone
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True

    def _compile(self, key: str, sources: dict[str, bytes]) -> None:
        result: dict[str, bytes] | None = None
        try:
            result = self._run_node(sources)
            self._write_cache(key, result)
        except Exception as exc:  # a compile that fails leaves the sources to do the work
            log.warning("no bytecode for /pyrt.zip (the sources are served alone): %s", exc)
        finally:
            (self._cache / f"{key}.compiling").unlink(missing_ok=True)
        with self._lock:
            self._running.pop(key, None)
            if result is None:
                self._failed.add(key)
            else:
                self._done[key] = result

    def _run_node(self, sources: dict[str, bytes]) -> dict[str, bytes]:
        assert self._node is not None
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            for name, data in sources.items():
                archive.writestr(name, data)
        done = subprocess.run(
            [self._node, "--input-type=module", "-e", _SCRIPT, str(self._pyodide)],
            input=buf.getvalue(),
            capture_output=True,
            timeout=self._timeout,
            check=False,
        )
        if done.returncode != 0:
            told = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"node exited with {done.returncode}: {told}")
        with zipfile.ZipFile(io.BytesIO(done.stdout)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    def _write_cache(self, key: str, pycs: dict[str, bytes]) -> None:
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
            partial = self._cache / f"{key}.zip.{os.getpid()}.{threading.get_ident()}"
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, data in pycs.items():
                    archive.writestr(name, data)
            partial.replace(self._cache / f"{key}.zip")  # atomic: another server may read it now
            kept = sorted(self._cache.glob("*.zip"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in kept[KEEP:]:  # each edit of a source makes a new entry: keep the newest
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not keep pyrt's bytecode in %s: %s", self._cache, exc)
