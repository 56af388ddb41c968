"""What the reliability scenarios share: their figures line.

Each scenario prints one JSON line (``{"scenario": ..., ...}``) with its figures; with the
environment variable ``PYRT_FIGURES`` set to a file name, the line is also appended there (the
figures in docs/reliability.md come from such a file). The proxy, the delivery checker, waits and
server metrics come from pyrt's pytest plugin (``pyrt.pytest_plugin``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from pyrt.pytest_plugin.delivery import DeliveryReport

__all__ = ["emit", "rounded"]


def rounded(value: Any, digits: int = 3) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def emit(scenario: str, report: DeliveryReport | None = None, **figures: Any) -> dict[str, Any]:
    """Print the scenario's figures as one JSON line (and append it to ``$PYRT_FIGURES``)."""
    if report is not None:
        body = json.loads(report.json_line(scenario, **figures))
    else:
        body = {"scenario": scenario, **figures}
    line = json.dumps(rounded(body), sort_keys=True)
    print(line, flush=True)
    path = os.environ.get("PYRT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    parsed: dict[str, Any] = json.loads(line)
    return parsed
