"""Close policy: the documented table of codes to stop on and to recover from, and valid close codes."""

from __future__ import annotations

import pytest

from pyrt.engine.close_policy import TOKEN_EXPIRED, CloseInfo, default_should_reconnect, validate_close_code
from pyrt.errors import InvalidCloseCode


@pytest.mark.parametrize("code", [1003, 1007, 1008, 1009, 1010, 4400, 4401, 4403, 4499])
def test_the_client_stops_on_codes_that_say_do_not_retry(code: int) -> None:
    assert default_should_reconnect(CloseInfo(code)) is False


@pytest.mark.parametrize("code", [1000, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 3000, 4000, 4500, 4999])
def test_the_client_reconnects_after_everything_else(code: int) -> None:
    assert default_should_reconnect(CloseInfo(code)) is True


@pytest.mark.parametrize("code", [1000, 3000, 4000, 4999])
def test_browsers_allow_closing_with_1000_and_3000_to_4999(code: int) -> None:
    assert validate_close_code(code) == code


@pytest.mark.parametrize("code", [999, 1001, 1006, 2999, 5000])
def test_other_close_codes_are_refused_with_the_rule(code: int) -> None:
    with pytest.raises(InvalidCloseCode, match="only close with 1000 or 3000-4999"):
        validate_close_code(code)


def test_a_close_code_must_be_an_int() -> None:
    with pytest.raises(InvalidCloseCode, match="must be an int"):
        validate_close_code("1000")  # type: ignore[arg-type]  # the misuse under test


def test_an_expired_token_close_reconnects_so_a_fresh_token_is_fetched() -> None:
    assert TOKEN_EXPIRED == 4001
    assert default_should_reconnect(CloseInfo(TOKEN_EXPIRED, "token expired", True, 3600.0))
    assert not default_should_reconnect(CloseInfo(4401, "missing, bad or expired token", True, 0.0))
