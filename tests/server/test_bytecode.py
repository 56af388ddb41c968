"""Pages get pyrt's bytecode for their own Python: compiled once by the Pyodide in node_modules
under Node.js, in the background, kept on disk; never stale, and never in the way."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pyrt.server.assets import PackageZip
from pyrt.server.bytecode import PyodideBytecode
from tests import REPO, skip_outside_ci

PYODIDE = REPO / "node_modules" / "pyodide"

FAKE_NODE = """#!{python}
# Stands in for node + Pyodide: each source "compiles" to b"pyc:" + its bytes; counts its runs.
import io, pathlib, sys, zipfile
runs = pathlib.Path({runs!r})
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
if {fail!r}:
    sys.stderr.write("SyntaxError: broken\\n")
    sys.exit(1)
out = io.BytesIO()
with zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read())) as src, zipfile.ZipFile(out, "w") as dst:
    for name in src.namelist():
        folder, _, file = name.rpartition("/")
        dst.writestr(f"{{folder}}/__pycache__/{{file[:-3]}}.cpython-314.pyc", b"pyc:" + src.read(name))
sys.stdout.buffer.write(out.getvalue())
"""


def fake_node(tmp_path: Path, fail: bool = False) -> tuple[str, Path]:
    runs = tmp_path / "runs"
    node = tmp_path / "node"
    node.write_text(FAKE_NODE.format(python=sys.executable, runs=str(runs), fail=fail))
    node.chmod(node.stat().st_mode | stat.S_IXUSR)
    return str(node), runs


def fake_pyodide(tmp_path: Path, version: str = "314.0.7") -> Path:
    pyodide = tmp_path / "node_modules" / "pyodide"
    pyodide.mkdir(parents=True, exist_ok=True)
    (pyodide / "pyodide.mjs").write_text("export {};")
    (pyodide / "package.json").write_text(f'{{"version": "{version}"}}')
    return pyodide


def package(tmp_path: Path) -> Path:
    root = tmp_path / "src" / "pyrt"
    (root / "engine").mkdir(parents=True)
    (root / "__init__.py").write_text("A = 1\n")
    (root / "engine" / "backoff.py").write_text("B = 2\n")
    return root


def names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_the_zip_holds_the_sources_until_the_bytecode_is_ready_then_both(tmp_path: Path) -> None:
    node, runs = fake_node(tmp_path)
    archive = PackageZip(package(tmp_path), PyodideBytecode(fake_pyodide(tmp_path), tmp_path / "cache", node))
    first = names(archive.build())
    assert first == ["pyrt/__init__.py", "pyrt/engine/backoff.py"]
    assert archive.wait_for_bytecode(timeout=60)
    data = archive.build()
    assert names(data) == [
        "pyrt/__init__.py",
        "pyrt/__pycache__/__init__.cpython-314.pyc",
        "pyrt/engine/__pycache__/backoff.cpython-314.pyc",
        "pyrt/engine/backoff.py",
    ]
    assert zipfile.ZipFile(io.BytesIO(data)).read("pyrt/engine/__pycache__/backoff.cpython-314.pyc") == (
        b"pyc:B = 2\n"
    )
    assert runs.read_text() == "1"


def test_a_server_restarted_on_the_same_sources_takes_the_bytecode_from_the_disk(tmp_path: Path) -> None:
    node, runs = fake_node(tmp_path)
    pyodide, cache, root = fake_pyodide(tmp_path), tmp_path / "cache", package(tmp_path)
    assert PackageZip(root, PyodideBytecode(pyodide, cache, node)).wait_for_bytecode(timeout=60)
    again = PackageZip(root, PyodideBytecode(pyodide, cache, node))
    assert len(names(again.build())) == 4  # at once: no compile to wait for
    assert runs.read_text() == "1"


def test_an_edited_source_or_another_pyodide_gets_new_bytecode(tmp_path: Path) -> None:
    node, runs = fake_node(tmp_path)
    cache, root = tmp_path / "cache", package(tmp_path)
    archive = PackageZip(root, PyodideBytecode(fake_pyodide(tmp_path), cache, node))
    assert archive.wait_for_bytecode(timeout=60)
    (root / "engine" / "backoff.py").write_text("B = 3\n")
    assert names(archive.build()) == ["pyrt/__init__.py", "pyrt/engine/backoff.py"]  # never stale
    assert archive.wait_for_bytecode(timeout=60)
    data = zipfile.ZipFile(io.BytesIO(archive.build()))
    assert data.read("pyrt/engine/__pycache__/backoff.cpython-314.pyc") == b"pyc:B = 3\n"
    other = PackageZip(root, PyodideBytecode(fake_pyodide(tmp_path / "other", "315.0.0"), cache, node))
    assert other.wait_for_bytecode(timeout=60)
    assert runs.read_text() == "3"


def test_a_failed_compile_leaves_the_sources_alone_and_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node, runs = fake_node(tmp_path, fail=True)
    archive = PackageZip(package(tmp_path), PyodideBytecode(fake_pyodide(tmp_path), tmp_path / "cache", node))
    assert not archive.wait_for_bytecode(timeout=60)
    assert names(archive.build()) == ["pyrt/__init__.py", "pyrt/engine/backoff.py"]
    assert runs.read_text() == "1"
    assert "SyntaxError: broken" in caplog.text


def test_without_node_or_pyodide_there_is_no_bytecode(tmp_path: Path) -> None:
    node, _ = fake_node(tmp_path)
    assert not PyodideBytecode(tmp_path / "nowhere", tmp_path / "cache", node).available
    no_node = PyodideBytecode(fake_pyodide(tmp_path), tmp_path / "cache", node="")
    assert not PackageZip(package(tmp_path), no_node).wait_for_bytecode(timeout=1)


def test_one_server_process_compiles_while_another_waits_for_its_result(tmp_path: Path) -> None:
    node, runs = fake_node(tmp_path)
    pyodide, cache, root = fake_pyodide(tmp_path), tmp_path / "cache", package(tmp_path)
    sources = PackageZip(root).sources()
    other = PyodideBytecode(pyodide, cache, node)
    claim = cache / f"{other.key(sources)}.compiling"
    cache.mkdir()
    claim.write_text(str(os.getppid()))  # another worker, alive, is compiling
    assert other.get(sources) is None
    assert not runs.exists()
    PyodideBytecode(pyodide, cache / "elsewhere", node).wait(sources, timeout=60)
    (cache / "elsewhere" / f"{other.key(sources)}.zip").rename(cache / f"{other.key(sources)}.zip")
    claim.unlink()
    assert other.get(sources) is not None  # its result, read from the shared cache


def test_a_compile_abandoned_by_a_stopped_server_is_taken_over(tmp_path: Path) -> None:
    node, runs = fake_node(tmp_path)
    pyodide, cache, root = fake_pyodide(tmp_path), tmp_path / "cache", package(tmp_path)
    sources = PackageZip(root).sources()
    bytecode = PyodideBytecode(pyodide, cache, node)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    cache.mkdir()
    (cache / f"{bytecode.key(sources)}.compiling").write_text(gone.stdout.decode().strip())
    assert bytecode.wait(sources, timeout=60) is not None
    assert runs.read_text() == "1"


def test_node_compiles_checked_hash_pycs_with_pyodides_python(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (PYODIDE / "pyodide.mjs").is_file():
        skip_outside_ci("needs node and Pyodide (make setup)")
    pycs = PyodideBytecode(PYODIDE, tmp_path / "cache").wait({"pyrt/x.py": b"X = 1\n"}, timeout=240)
    assert pycs is not None
    pyc = pycs["pyrt/__pycache__/x.cpython-314.pyc"]
    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked against the source
