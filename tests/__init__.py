"""pyrt's own test suite (the fixtures come from pyrt's pytest plugin, pyrt/pytest_plugin)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
