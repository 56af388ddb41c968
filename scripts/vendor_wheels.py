#!/usr/bin/env python3
"""Fetch the pure-Python wheels Pyodide needs offline and write a lock file that accepts them.

The npm ``pyodide`` package ships the interpreter but no package wheels (not even ``micropip``),
and Pyodide checks every wheel it loads against the ``sha256`` in ``pyodide-lock.json``. The
lock's hashes are those of Pyodide's own rebuilt wheels, so a wheel from PyPI never matches.

This script downloads the pinned pure-Python wheels from PyPI with ``pip download`` and writes a
copy of the lock whose entries carry the real hashes of those files (adding entries for packages
the lock does not know). ``serve.py`` serves that copy and the wheels under ``/vendor/pyodide/``,
and ``make notebook`` copies them into the JupyterLite site.

Versions are those of the lock itself (the npm package pins Pyodide, Pyodide pins its packages);
packages the lock lacks are pinned in :data:`EXTRA`. Run again after upgrading Pyodide: it is
idempotent and downloads only what is missing.

    python scripts/vendor_wheels.py [--out .cache/pyodide] [--pyodide node_modules/pyodide]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / ".cache" / "pyodide"
DEFAULT_PYODIDE = REPO / "node_modules" / "pyodide"
LOCK = "pyodide-lock.json"

#: ``loadPackage("micropip")`` and ``micropip.install(...)`` of a local wheel.
MICROPIP = ("micropip", "packaging")

#: What the JupyterLite Pyodide kernel loads from the lock when it starts (ipykernel's world).
NOTEBOOK = (
    "ipython",
    "jedi",
    "parso",
    "wcwidth",
    "traitlets",
    "stack-data",
    "pure-eval",
    "asttokens",
    "six",
    "executing",
    "pygments",
    "prompt-toolkit",
    "matplotlib-inline",
    "decorator",
    "comm",
)

#: Packages missing from Pyodide's lock, pinned here: name -> version.
EXTRA = {"comm": "0.2.3"}

#: Compiled wheels, built for Pyodide's ABI and published on PyPI: name -> version. The lock pins
#: msgpack 1.1.2, whose Pyodide build is not on PyPI; 1.2.4's ``pyemscripten_2026_0_wasm32`` is.
#: msgpack is what pyrt's binary binding speaks; a page loads it (``loadPackage("msgpack")``)
#: only when it wants that binding: pyrt's own lock entry does not depend on it (start-up).
PLATFORM = {"msgpack": "1.2.4"}


def normalize(name: str) -> str:
    """PEP 503 name normalization (``Prompt_Toolkit`` -> ``prompt-toolkit``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_entry(packages: dict[str, Any], name: str) -> tuple[str, dict[str, Any]] | None:
    """The lock entry for ``name`` (the lock's keys and ``name`` fields are not normalized alike)."""
    wanted = normalize(name)
    for key, entry in packages.items():
        if normalize(key) == wanted or normalize(entry.get("name", "")) == wanted:
            return key, entry
    return None


def pins(lock: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """name -> version for every wanted package: the lock's version, else :data:`EXTRA`'s."""
    result: dict[str, str] = {}
    for name in names:
        found = find_entry(lock["packages"], name)
        if found is not None:
            result[name] = found[1]["version"]
        elif name in EXTRA:
            result[name] = EXTRA[name]
        else:
            raise SystemExit(f"{name} is neither in {LOCK} nor pinned in EXTRA: pin a version for it")
    return result


def wheel_for(out: Path, name: str, version: str) -> Path | None:
    """The already-downloaded wheel of ``name==version`` in ``out``, if any."""
    stem = re.sub(r"[-_.]+", "_", name).lower()
    for path in out.glob("*.whl"):
        dist, ver = path.name.split("-")[:2]
        if re.sub(r"[-_.]+", "_", dist).lower() == stem and ver == version:
            return path
    return None


def download(out: Path, wanted: dict[str, str], platform: str | None = None) -> None:
    """``pip download`` the pure-Python wheels not yet in ``out`` (all in one pip run); with
    ``platform`` (``pyemscripten_2026_0_wasm32``), the compiled wheels for Pyodide's ABI."""
    missing = [f"{name}=={version}" for name, version in wanted.items() if not wheel_for(out, name, version)]
    if not missing:
        return
    target = ["--platform", "any", "--implementation", "py"]
    if platform is not None:
        target = ["--platform", platform, "--abi", "cp314"]
    print(f"vendor_wheels: downloading {len(missing)} wheels into {out}", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.14",
            *target,
            "--dest",
            str(out),
            *missing,
        ],
        check=True,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_metadata(path: Path) -> tuple[list[str], list[str]]:
    """(top-level import names, unconditional requirement names) read from a wheel."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = HeaderParser().parsestr(zf.read(meta_name).decode())
    requires = []
    for req in meta.get_all("Requires-Dist") or []:
        if ";" in req:  # extras and environment markers: not needed to import the package
            continue
        requires.append(normalize(re.split(r"[\s\[<>=!~(]", req.strip(), maxsplit=1)[0]))
    imports = sorted(
        {
            n.split("/")[0].removesuffix(".py")
            for n in names
            if "/" in n or n.endswith(".py")
            if not n.split("/")[0].endswith((".dist-info", ".data"))
        }
    )
    return imports, requires


def rewrite_lock(lock: dict[str, Any], wheels: dict[str, Path]) -> dict[str, Any]:
    """A copy of ``lock`` whose entries for ``wheels`` (name -> file) match those files.

    Existing entries get the real ``sha256`` and ``file_name``; packages the lock lacks get a new
    entry (imports and dependencies read from the wheel). Nothing else changes.
    """
    packages = dict(lock["packages"])
    for name, path in wheels.items():
        found = find_entry(packages, name)
        if found is not None:
            key, entry = found
            version = path.name.split("-")[1]
            packages[key] = {**entry, "file_name": path.name, "sha256": sha256(path), "version": version}
            continue
        imports, requires = wheel_metadata(path)
        packages[normalize(name)] = {
            "name": normalize(name),
            "version": path.name.split("-")[1],
            "file_name": path.name,
            "install_dir": "site",
            "package_type": "package",
            "sha256": sha256(path),
            "imports": imports,
            "depends": sorted(
                (found_dep[0] for dep in requires if (found_dep := find_entry(packages, dep))),
            ),
            "unvendored_tests": False,
            "tool": {},
        }
    return {**lock, "packages": packages}


def vendor(out: Path, pyodide: Path, names: tuple[str, ...] = MICROPIP + NOTEBOOK) -> Path:
    """Download the wheels for ``names`` into ``out`` and write ``out/pyodide-lock.json``."""
    source = pyodide / LOCK
    if not source.is_file():
        raise SystemExit(f"{source} is missing: run `npm ci` in the repository root first")
    lock = json.loads(source.read_text())
    wanted = pins(lock, names)
    out.mkdir(parents=True, exist_ok=True)
    download(out, wanted)
    info = lock.get("info", {})
    download(out, PLATFORM, f"pyemscripten_{info.get('abi_version', '2026_0')}_{info.get('arch', 'wasm32')}")
    wanted = {**wanted, **PLATFORM}
    wheels: dict[str, Path] = {}
    for name, version in wanted.items():
        path = wheel_for(out, name, version)
        if path is None:
            raise SystemExit(f"pip did not leave a wheel for {name}=={version} in {out}")
        wheels[name] = path
    target = out / LOCK
    text = json.dumps(rewrite_lock(lock, wheels), indent=None, separators=(",", ":"), sort_keys=True)
    if not target.is_file() or target.read_text() != text:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="wheel cache and served lock")
    parser.add_argument("--pyodide", type=Path, default=DEFAULT_PYODIDE, help="the npm Pyodide dist")
    args = parser.parse_args(argv)
    target = vendor(args.out, args.pyodide)
    print(f"vendor_wheels: {target} ({len(list(args.out.glob('*.whl')))} wheels)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
