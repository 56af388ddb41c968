"""The public API: ``pyrt.__all__`` lists every public name, sorted, and each one resolves."""

from __future__ import annotations

import pyrt


def test_all_is_sorted_and_unique() -> None:
    assert list(pyrt.__all__) == sorted(set(pyrt.__all__))


def test_every_exported_name_resolves() -> None:
    missing = [name for name in pyrt.__all__ if not hasattr(pyrt, name)]
    assert missing == []


def test_no_public_name_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(pyrt).items()
        if not name.startswith("_") and not isinstance(value, type(pyrt))
    }
    assert public <= set(pyrt.__all__)


def test_the_version_is_the_one_in_pyproject() -> None:
    import tomllib
    from pathlib import Path

    pyproject = Path(pyrt.__file__).resolve().parents[1] / "pyproject.toml"
    assert pyrt.__version__ == tomllib.loads(pyproject.read_text())["project"]["version"]


def test_importing_pyrt_loads_each_client_only_when_it_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pyrt\n"
        "bare = sorted(m for m in sys.modules if m.startswith('pyrt.'))\n"
        "pyrt.WebSocketClient\n"
        "ws = sorted(m for m in sys.modules if m.startswith('pyrt.'))\n"
        "print(bare, 'pyrt.aio.websocket' in ws, 'pyrt.engine.sse' in ws, 'pyrt.persist.records' in ws)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # persistence code loads only for a client made with persist=
    assert out.stdout.split() == ["[]", "True", "False", "False"]
