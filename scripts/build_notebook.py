#!/usr/bin/env python3
"""Build the offline JupyterLite site (``make notebook``): Pyodide, pyrt and the example notebooks.

Steps:

1. ``vendor_wheels.py``: the kernel's pure-Python wheels and a Pyodide lock with their real hashes.
2. A JupyterLite source dir (``.cache/lite-src``) holding ``jupyter-lite.json`` and the local Pyodide
   at ``static/pyodide/`` (npm dist + vendored wheels + pyrt's wheel, with pyrt in the lock). The
   ``--pyodide DIR`` option of jupyterlite 0.8.6 is broken for directories; this well-known
   path is what its Pyodide addon copies instead.
3. ``jupyter lite build`` into ``.cache/lite`` with ``examples/*.ipynb`` as contents and pyrt's
   wheel in the site's own package index, so ``%pip install pyrt`` works too.

The kernel preloads pyrt (``loadPyodideOptions.packages``) and never falls back to PyPI. Serve
the result with ``python serve.py`` (at ``/lab/``, with a live pyrt wheel) or any static server.

    python scripts/build_notebook.py [--out .cache/lite]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from vendor_wheels import DEFAULT_OUT as WHEEL_CACHE  # noqa: E402
from vendor_wheels import DEFAULT_PYODIDE, LOCK, REPO, vendor  # noqa: E402

from pyrt.server.wheels import PyrtWheel  # noqa: E402

DEFAULT_SITE = REPO / ".cache" / "lite"
DEFAULT_SOURCE = REPO / ".cache" / "lite-src"
EXAMPLES = REPO / "examples"
KERNEL_PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"
# Not needed at run time: type declarations, docs, source maps, the Node console pages.
SKIP_SUFFIXES = (".d.ts", ".map", ".md", ".html")
PACKAGE = "package.json"


def lite_config() -> dict[str, object]:
    return {
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "pyrt notebooks",
            "exposeAppInBrowser": True,
            "litePluginSettings": {
                KERNEL_PLUGIN: {
                    "pyodideUrl": "./static/pyodide/pyodide.mjs",
                    "disablePyPIFallback": True,
                    "loadPyodideOptions": {"packages": ["pyrt"]},
                }
            },
        },
    }


def sync_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` unless an identical-looking copy is already there."""
    if target.is_file():
        a, b = source.stat(), target.stat()
        if a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns:
            return
    shutil.copy2(source, target)


def write_if_changed(target: Path, data: bytes) -> None:
    if not target.is_file() or target.read_bytes() != data:
        target.write_bytes(data)


def assemble(source_dir: Path, pyodide: Path, wheel_cache: Path) -> Path:
    """Fill the lite source dir; return the path of pyrt's wheel in it."""
    static = source_dir / "static" / "pyodide"
    static.mkdir(parents=True, exist_ok=True)
    wanted: set[str] = set()
    for path in sorted(pyodide.iterdir()):
        if path.is_file() and not path.name.endswith(SKIP_SUFFIXES) and path.name not in (LOCK, PACKAGE):
            sync_file(path, static / path.name)
            wanted.add(path.name)
    for path in sorted(wheel_cache.glob("*.whl")):
        sync_file(path, static / path.name)
        wanted.add(path.name)

    wheel = PyrtWheel(REPO / "pyrt")
    data = wheel.build()
    write_if_changed(static / wheel.filename, data)
    wanted.add(wheel.filename)
    lock = json.loads((wheel_cache / LOCK).read_text())
    lock["packages"]["pyrt"] = wheel.lock_entry()
    write_if_changed(static / LOCK, json.dumps(lock, separators=(",", ":")).encode())
    wanted.add(LOCK)
    for stale in static.iterdir():  # an old pyrt wheel, a file Pyodide no longer ships
        if stale.name not in wanted:
            stale.unlink()

    write_if_changed(source_dir / "jupyter-lite.json", json.dumps(lite_config(), indent=2).encode())
    wheels = source_dir / "pypi-wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir()
    target = wheels / wheel.filename
    target.write_bytes(data)
    return target


def build(site: Path, source_dir: Path, pyodide: Path, wheel_cache: Path) -> Path:
    vendor(wheel_cache, pyodide)
    pyrt_wheel = assemble(source_dir, pyodide, wheel_cache)
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [
        str(jupyter) if jupyter.exists() else "jupyter",
        "lite",
        "build",
        "--lite-dir",
        str(source_dir),
        "--output-dir",
        str(site),
        "--contents",
        str(EXAMPLES),
        "--piplite-wheels",
        str(pyrt_wheel),
        "--no-sourcemaps",
        "--no-unused-shared-packages",
    ]
    result = subprocess.run(command, cwd=source_dir, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"jupyter lite build failed ({result.returncode})")
    if not (site / "static" / "pyodide" / "pyodide.mjs").is_file():
        raise SystemExit(f"{site}/static/pyodide is missing: the Pyodide addon did not copy it")
    return site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_SITE, help="where the site goes")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="JupyterLite source dir")
    parser.add_argument("--pyodide", type=Path, default=DEFAULT_PYODIDE, help="the npm Pyodide dist")
    parser.add_argument("--wheels", type=Path, default=WHEEL_CACHE, help="vendored wheel cache")
    args = parser.parse_args(argv)
    site = build(args.out.resolve(), args.source.resolve(), args.pyodide.resolve(), args.wheels.resolve())
    print(f"build_notebook: {site} (serve.py shows it at /lab/)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
