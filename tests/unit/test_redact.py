"""Credentials are redacted from log records: query parameters, handshake headers, frames."""

from __future__ import annotations

import logging

from pyrt.redact import MAX_LOGGED, RedactSecrets, redact


def test_credential_like_parameters_are_redacted_and_others_kept() -> None:
    assert (
        redact("/sse?channel=news&token=abc.def&lastEventId=3") == "/sse?channel=news&token=***&lastEventId=3"
    )
    assert redact("/ws?access_token=x&API_KEY=y&sig=z") == "/ws?access_token=***&API_KEY=***&sig=***"
    assert redact("/healthz") == "/healthz"
    assert redact("/x?tokenizer_mode=1") == "/x?tokenizer_mode=***"  # errs on the side of hiding


def test_the_filter_rewrites_record_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', ("1.2.3.4", "GET", "/a?password=p"), None
    )
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == '1.2.3.4 - "GET /a?password=***"'


def test_tokens_in_handshakes_headers_and_frames_are_redacted() -> None:
    token = "eyJzdWIiOiJhIn0.c2lnbmF0dXJl-_x"
    assert redact(f"< sec-websocket-protocol: pyrt.v1, bearer.{token}") == (
        "< sec-websocket-protocol: pyrt.v1, bearer.***"
    )
    assert redact(f"< authorization: Bearer {token}") == "< authorization: Bearer ***"
    assert (
        redact(f"< cookie: theme=dark; pyrt_token={token}; x=1")
        == "< cookie: theme=dark; pyrt_token=***; x=1"
    )
    assert redact('{"id":"r1","token":"' + token + '"}') == '{"id":"r1","token":"***"}'
    assert redact('{"type":"refresh","id":"r1","token":"' + token + '"}') == '{"type":"refresh" ***'
    cut = '< TEXT \'{"type":"refresh","id":"r1","token":"ey...Z2lnbmF0dXJl-_x"}\' [137 bytes]'
    assert token[-10:] not in redact(cut)
    cut_name = '< TEXT \'{"type":"refresh","id":"a-very-long-id-of-the-frame","to...Z2lnbmF0dXJl-_x"}\''
    assert redact(cut_name) == '< TEXT \'{"type":"refresh" ***'
    assert (
        redact('{"type":"publish","channel":"c","data":"hello"}')
        == '{"type":"publish","channel":"c","data":"hello"}'
    )


class _Frame:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def test_records_carrying_objects_or_split_secrets_are_formatted_and_redacted() -> None:
    frame = _Frame('TEXT \'{"token":"abc.def"}\'')
    record = logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, "%s %s", ("<", frame), None)
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == '< TEXT \'{"token":"***"}\''
    split = logging.LogRecord("x", logging.DEBUG, __file__, 1, "protocol bearer.%s", ("abc.def",), None)
    assert RedactSecrets().filter(split) is True
    assert split.getMessage() == "protocol bearer.***"


def test_a_record_with_nothing_to_hide_is_left_as_it_was() -> None:
    args = ("1.2.3.4", "GET", "/healthz")
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', args, None)
    assert RedactSecrets().filter(record) is True
    assert record.args == args
    assert record.msg == '%s - "%s %s"'


def test_a_long_access_log_line_keeps_the_shape_its_formatter_needs() -> None:
    from uvicorn.logging import AccessFormatter

    path = "/anything?" + "key" * 10_000 + "&token=secret"
    args = ("127.0.0.1:5000", "GET", path, "1.1", 404)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )
    assert RedactSecrets().filter(record) is True
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert "secret" not in line
    assert len(line) < 2 * MAX_LOGGED
    assert line.startswith('127.0.0.1:5000 - "GET /anything?keykey')
