"""Credential-like query parameters are redacted from log records."""

from __future__ import annotations

import logging

from pyrt.server.access_log import RedactSecrets, redact


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
