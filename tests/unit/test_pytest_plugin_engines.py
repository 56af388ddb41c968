"""The plugin's engines: choosing them, what each can do, the Firefox shim's guard, the binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrt.pytest_plugin import firefox
from pyrt.pytest_plugin.driver import _FUNCTION
from pyrt.pytest_plugin.engines import (
    ENGINES,
    EngineUnavailable,
    MissingCapability,
    firefox_executable,
    in_ci,
    parse_engines,
    webkit_executable,
)

pytest_plugins = ["pytester"]


def test_engines_are_chosen_by_comma_lists_and_repeats_in_order_without_duplicates() -> None:
    assert parse_engines(["chromium"]) == ("chromium",)
    assert parse_engines(["webkit, Firefox", "chromium,webkit"]) == ("webkit", "firefox", "chromium")
    assert parse_engines(["all"]) == ("chromium", "firefox", "webkit")
    assert parse_engines(["", " , "]) == ()


def test_an_unknown_engine_is_refused_with_the_known_names() -> None:
    with pytest.raises(
        ValueError, match="unknown engine 'safari': choose from chromium, firefox, webkit or all"
    ):
        parse_engines(["chromium,safari"])


def test_a_missing_capability_names_the_engine_what_drives_it_and_what_it_lacks() -> None:
    webkit = ENGINES["webkit"]
    with pytest.raises(MissingCapability) as raised:
        webkit.require("cdp", "use Chromium")
    assert str(raised.value) == (
        "webkit (WebKitGTK, driven by Selenium (classic WebDriver)) lacks the Chrome DevTools Protocol: "
        "use Chromium"
    )
    assert raised.value.engine is webkit
    assert raised.value.capability == "cdp"
    ENGINES["chromium"].require("cdp")  # has it: nothing happens
    assert not ENGINES["firefox"].has("crash")
    assert ENGINES["webkit"].has("hidden_pages")
    assert not ENGINES["chromium"].has("hidden_pages")


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("TRUE", True), ("", False), ("false", False)]
)
def test_ci_is_told_by_the_ci_variable(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_binaries_follow_their_variables_and_say_what_to_install(tmp_path: Path) -> None:
    binary = tmp_path / "browser"
    binary.write_text("")
    assert firefox_executable({"PYRT_FIREFOX": str(binary)}) == str(binary)
    assert webkit_executable({"PYRT_WEBKIT": str(binary)}) == str(binary)
    with pytest.raises(EngineUnavailable, match="PYRT_FIREFOX"):
        firefox_executable({"PYRT_FIREFOX": str(tmp_path / "nowhere")})
    with pytest.raises(EngineUnavailable, match="does not exist"):
        webkit_executable({"PYRT_WEBKIT": str(tmp_path / "nowhere")})


@pytest.mark.parametrize(
    ("script", "is_function"),
    [
        ("() => 1", True),
        ("async (x) => x", True),
        ("x => x + 1", True),
        ("function () { return 1 }", True),
        ("  async function f() {}", True),
        ("document.title", False),
        ("window.__log", False),
        ("(1 + 2)", False),
    ],
)
def test_webkit_calls_functions_and_evaluates_expressions_as_playwright_does(
    script: str, is_function: bool
) -> None:
    assert bool(_FUNCTION.match(script)) is is_function


@pytest.fixture
def fresh_shim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fake Playwright driver bundle for the shim to inspect; the shim's memory is cleared."""
    monkeypatch.setattr(firefox, "_STATE", None)
    bundle = tmp_path / "coreBundle.js"
    monkeypatch.setattr(firefox, "_driver_paths", lambda: (bundle, tmp_path / "node", "1.65.2"))
    return bundle


def test_the_shim_installs_a_node_wrapper_when_the_bundle_awaits_the_command(fresh_shim: Path) -> None:
    fresh_shim.write_text(
        'await this._session.send("emulation.setMediaFeaturesOverride", {});\n'
        'await this._browser._browserSession.send("emulation.setMediaFeaturesOverride", {});'
    )
    env: dict[str, str] = {}
    state = firefox.install_shim(env)
    assert state.installed
    assert "best-effort in 2 calls of Playwright 1.65.2" in state.reason
    wrapper = Path(env["PLAYWRIGHT_NODEJS_PATH"])
    text = wrapper.read_text()
    assert text.startswith("#!/bin/sh\nexec ")
    assert "--require" in text
    assert str(fresh_shim.parent / "node") in text
    assert "sendMayFail" in (wrapper.parent / "preload.js").read_text()
    assert firefox.install_shim(env) is state  # once per process


def test_the_shim_installs_nothing_and_says_so_when_there_is_nothing_to_patch(fresh_shim: Path) -> None:
    fresh_shim.write_text('await this._session.sendMayFail("emulation.setMediaFeaturesOverride", {});')
    env: dict[str, str] = {}
    state = firefox.install_shim(env)
    assert not state.installed
    assert "nothing to patch in Playwright 1.65.2" in state.reason
    assert "remove the shim" in state.reason
    assert "PLAYWRIGHT_NODEJS_PATH" not in env


def test_the_shim_says_so_when_playwright_has_no_bundle_where_it_looks(fresh_shim: Path) -> None:
    state = firefox.install_shim({})
    assert not state.installed
    assert "cannot check it" in state.reason


def test_the_pinned_playwright_still_has_what_the_shim_patches() -> None:
    """The shim is tied to the pinned Playwright: when an upgrade removes the call, this fails and
    the shim (pyrt/pytest_plugin/firefox.py) should go, or be rewritten."""
    bundle, _, version = firefox._driver_paths()
    assert version.startswith(firefox.WRITTEN_FOR)
    assert len(firefox._CALL.findall(bundle.read_text(encoding="utf-8"))) >= 1


PROJECT = """
import pytest

def test_every_engine(pyrt_engine):
    assert pyrt_engine.name in ("chromium", "firefox", "webkit")

@pytest.mark.pyrt_engines("chromium", "webkit")
def test_some_engines(pyrt_engine):
    assert pyrt_engine.name != "firefox"

@pytest.mark.pyrt_engines("chromium")
def test_chromium_only(pyrt_engine):
    pass

def test_devtools(pyrt_engine):
    pyrt_engine.require("cdp", "this test drives the DevTools protocol")

def test_no_browser_fixture():
    pass
"""


def test_a_users_tests_run_once_per_chosen_engine_and_skip_where_they_cannot(
    pytester: pytest.Pytester,
) -> None:
    """No browser starts: ``pyrt_engine`` alone is parametrized like every browser fixture."""
    pytester.makepyfile(test_engines=PROJECT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "-rs", "--pyrt-engine", "firefox,webkit"
    )
    result.assert_outcomes(passed=4, skipped=3)
    for line in (  # each once, in any order
        "*test_every_engine?firefox? PASSED*",
        "*test_every_engine?webkit? PASSED*",
        "*test_some_engines?webkit? PASSED*",
        "*test_no_browser_fixture PASSED*",
        "SKIPPED * runs in chromium only; --pyrt-engine selected firefox, webkit",
        "SKIPPED * firefox (Firefox, driven by Playwright (WebDriver BiDi)) lacks the Chrome DevTools *",
        "SKIPPED * webkit (WebKitGTK, driven by Selenium (classic WebDriver)) lacks the Chrome DevTools "
        "Protocol: this test drives the DevTools protocol",
    ):
        result.stdout.fnmatch_lines([line])
    assert "test_some_engines[firefox]" not in result.stdout.str()


def test_an_unknown_engine_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engines=PROJECT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pyrt-engine", "netscape")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pyrt-engine: unknown engine 'netscape'*"])
