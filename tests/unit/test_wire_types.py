"""Frame and AckId are defined once, in pyrt/wire/types.py, and every layer uses that definition."""

from __future__ import annotations

import ast
from pathlib import Path

from pyrt.wire import types as wire
from tests.astscan import parse

PACKAGE = Path(wire.__file__).parents[1]


def aliases_defined(source: str) -> set[str]:
    """Top-level assignments to ``Frame`` or ``AckId`` in ``source``."""
    return {
        target.id
        for node in parse(source).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id in ("Frame", "AckId")
    }


def test_the_aliases_mean_text_or_binary_and_string_or_integer_ids() -> None:
    assert wire.Frame == str | bytes
    assert wire.AckId == str | int


def test_no_other_module_defines_them_again() -> None:
    again = {
        str(path.relative_to(PACKAGE)): found
        for path in PACKAGE.rglob("*.py")
        if path != Path(wire.__file__) and (found := aliases_defined(path.read_text(encoding="utf-8")))
    }
    assert again == {}


def test_the_scan_sees_an_alias() -> None:
    assert aliases_defined("Frame = str | bytes\nAckId: object = int\nOther = 1\n") == {"Frame", "AckId"}
