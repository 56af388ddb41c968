"""Reading pyrt's sources as syntax trees, for the tests that check the architecture.

``ast.parse`` runs with the garbage collector paused: on CPython 3.11 a collection that runs
finalizers (leftover event loops of earlier tests) in the middle of building the tree can make
it fail with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905).
"""

from __future__ import annotations

import ast
import gc

__all__ = ["parse"]


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename=filename)
    finally:
        if enabled:
            gc.enable()
