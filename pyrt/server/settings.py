"""Server settings: one frozen object, built from the command line or by the embedding app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REPO_ROOT", "Settings"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the server serves and how.

    ``web_dir`` holds the pages (the demo); ``node_modules`` the pinned Pyodide and PyScript
    (installed by ``npm ci``); ``package_dir`` the ``pyrt`` sources shipped to browsers as
    ``/pyrt.zip``, rebuilt whenever a source file changes.
    """

    web_dir: Path = REPO_ROOT / "web"
    node_modules: Path = REPO_ROOT / "node_modules"
    package_dir: Path = REPO_ROOT / "pyrt"
    demo: bool = True
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
