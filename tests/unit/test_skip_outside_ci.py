"""A test that cannot run here skips, except in CI, where it fails."""

from __future__ import annotations

import pytest

from tests import skip_outside_ci


def test_outside_ci_it_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget here"):
        skip_outside_ci("no widget here")


def test_in_ci_it_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no widget here"):
        skip_outside_ci("no widget here")
