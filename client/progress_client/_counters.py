"""Worker counters as the service takes them (a JSON body's `counters`): cleaned here, so that an
odd value costs the worker that one counter, never its progress."""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Mapping

log = logging.getLogger("progress_client")

# The service's default bounds (PROGRESS_MAX_COUNTERS, ..._NAME_LENGTH, ..._VALUE_LENGTH).
MAX_COUNTERS = 20
MAX_NAME = 64
MAX_VALUE = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}|[A-Za-z]{3,20}")  # #rrggbb or a CSS colour name


def clean_counters(values: Mapping[Any, Any]) -> dict[str, Any]:
    """Counters to send: a name maps to a number, a string, or [value, colour]."""
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        name = _CONTROL.sub(" ", str(name)).strip()[:MAX_NAME]
        colour = None
        if isinstance(value, (tuple, list)) and len(value) == 2:
            value, colour = value
        value = _value(value)
        if not name or value is None:
            log.warning("progress_client: counter %r left out: no name, or no finite value", name)
            continue
        if colour is not None and not _COLOUR.fullmatch(str(colour).strip()):
            log.warning(
                "progress_client: counter %r: %r is not a colour; sent without", name, colour
            )
            colour = None
        cleaned[name] = value if colour is None else [value, str(colour).strip()]
    return cleaned


def _value(value: Any) -> int | float | str | None:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) and abs(value) <= 1e15 else None
    return _CONTROL.sub(" ", str(value))[:MAX_VALUE]
