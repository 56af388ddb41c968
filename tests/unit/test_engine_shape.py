"""The engine's shape, as tests: a connection core plus features, no class over ~600 lines, no
request kinds told apart by strings, and one owner for every frame a server sends."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from pyrt.engine.websocket import WebSocketEngine
from pyrt.wire import frames
from tests.astscan import parse

ENGINE = Path(__file__).resolve().parents[2] / "pyrt" / "engine"
MAX_CLASS_LINES = 600


def _classes(tree: ast.Module) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _string_kind_tests(source: str) -> list[str]:
    """Comparisons of something named ``kind`` with a string, or membership of it in strings:
    ``entry.kind == "join"``, ``kind in ("refresh", "join")``."""
    found = []
    for node in ast.walk(parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        named_kind = any(
            (isinstance(side, ast.Attribute) and side.attr == "kind")
            or (isinstance(side, ast.Name) and side.id == "kind")
            for side in sides
        )
        strings = any(
            (isinstance(side, ast.Constant) and isinstance(side.value, str))
            or (
                isinstance(side, ast.Tuple | ast.Set | ast.List)
                and any(isinstance(e, ast.Constant) for e in side.elts)
            )
            or (isinstance(side, ast.Name) and side.id.isupper())  # a constant set of names
            for side in sides
        )
        if named_kind and strings:
            found.append(ast.unparse(node))
    return found


def test_the_scanner_finds_string_kind_tests() -> None:
    assert _string_kind_tests('if entry.kind == "join": pass') == ["entry.kind == 'join'"]
    assert _string_kind_tests('if kind in ("refresh", "join"): pass') == ["kind in ('refresh', 'join')"]
    assert _string_kind_tests("if e.kind in PERSISTED_KINDS: pass") == ["e.kind in PERSISTED_KINDS"]
    assert _string_kind_tests("if entry.persisted: pass") == []


def test_no_class_of_the_engine_is_over_600_lines() -> None:
    for path in sorted(ENGINE.glob("*.py")):
        for cls in _classes(parse(path.read_text(encoding="utf-8"))):
            size = (cls.end_lineno or cls.lineno) - cls.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{path.name}: class {cls.name} has {size} lines"


def test_no_engine_module_tells_request_kinds_apart_by_a_string() -> None:
    for path in sorted(ENGINE.glob("*.py")):
        found = _string_kind_tests(path.read_text(encoding="utf-8"))
        assert found == [], f"{path.name} dispatches on a kind string: {found}"


def test_every_frame_a_server_sends_has_one_owner_in_the_engine() -> None:
    """Messages are the hot path's (``received`` returns them); ``unsubscribed`` needs no action."""
    engine = WebSocketEngine(heartbeat=None)
    sent_by_servers = {typing.get_origin(t) or t for t in typing.get_args(frames.ServerFrame)}
    assert sent_by_servers - set(engine.frames) == {frames.Message, frames.Unsubscribed}
    assert frames.BadFrame in engine.frames  # what a client cannot read is reported
