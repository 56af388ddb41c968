"""The PYRT_CHROMIUM rule picks the browser binary; pyrt's flags join whatever pytest-playwright asks."""

from __future__ import annotations

from pathlib import Path

from pyrt.pytest_plugin.chromium import CHROMIUM_FLAGS, chromium_executable, launch_options


def test_a_path_in_the_variable_wins(tmp_path: Path) -> None:
    system = tmp_path / "chromium"
    system.touch()
    assert chromium_executable({"PYRT_CHROMIUM": "/opt/chrome"}, system=str(system)) == "/opt/chrome"


def test_an_empty_variable_means_playwrights_own_browser(tmp_path: Path) -> None:
    system = tmp_path / "chromium"
    system.touch()
    assert chromium_executable({"PYRT_CHROMIUM": ""}, system=str(system)) is None


def test_unset_means_the_system_chromium_when_there_is_one(tmp_path: Path) -> None:
    system = tmp_path / "chromium"
    assert chromium_executable({}, system=str(system)) is None  # not installed: Playwright's own
    system.touch()
    assert chromium_executable({}, system=str(system)) == str(system)


def test_pyrt_flags_follow_the_users_flags_once_each(tmp_path: Path) -> None:
    user = {"headless": False, "args": ["--lang=fr", "--no-sandbox"]}
    options = launch_options(user, {"PYRT_CHROMIUM": ""}, system=str(tmp_path))
    assert options["headless"] is False
    assert options["args"][0] == "--lang=fr"
    assert sorted(options["args"]) == sorted({"--lang=fr", *CHROMIUM_FLAGS})
    assert "executable_path" not in options


def test_a_browser_channel_is_kept_unless_the_variable_names_a_binary(tmp_path: Path) -> None:
    system = tmp_path / "chromium"
    system.touch()
    kept = launch_options({"channel": "chrome"}, {}, system=str(system))
    assert kept["channel"] == "chrome"
    assert "executable_path" not in kept
    chosen = launch_options({"channel": "chrome"}, {"PYRT_CHROMIUM": "/opt/chrome"}, system=str(system))
    assert chosen["executable_path"] == "/opt/chrome"
    assert "channel" not in chosen


def test_the_system_chromium_is_used_when_nothing_else_was_asked(tmp_path: Path) -> None:
    system = tmp_path / "chromium"
    system.touch()
    assert launch_options({}, {}, system=str(system))["executable_path"] == str(system)
