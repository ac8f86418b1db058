"""An update's `counters`: the free-form values a worker posts in a JSON body (ARP's report
column), checked against their rules. Every failure is a 400 naming `counters` and the counter."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import falcon

from api.params import is_unicode
from domain.counters import CSS_COLOURS, HEX_COLOUR, Counter
from tasks.settings import Settings

FIELD = "counters"
MAX_NUMBER = 1e15  # as for every other number (api.params), and exact in JavaScript
_CONTROL = re.compile(r"[\u0000-\u001f\u007f]")  # a counter is one line: no tabs, no breaks


def parse_counters(raw: Any, settings: Settings) -> tuple[Counter, ...]:
    """The counters of an update (none when left out), in the order given."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _invalid('it must be an object of counter names and values, e.g. {"files": 3}')
    if len(raw) > settings.max_counters:
        raise _invalid(
            f"a worker may have at most {settings.max_counters} counters "
            f"(PROGRESS_MAX_COUNTERS); this update has {len(raw)}"
        )
    return tuple(_counter(name, value, settings) for name, value in raw.items())


def _counter(name: str, raw: Any, settings: Settings) -> Counter:
    label = json.dumps(name, ensure_ascii=False) if is_unicode(name) else "a counter"
    if not name or len(name) > settings.max_counter_name_length:
        raise _invalid(
            f"{label}: a name must be 1 to {settings.max_counter_name_length} characters long "
            "(PROGRESS_MAX_COUNTER_NAME_LENGTH)"
        )
    _check_text(label, "its name", name)
    colour = ""
    if isinstance(raw, list):
        if len(raw) != 2 or not isinstance(raw[1], str):
            raise _invalid(f'{label}: a list must be [value, colour], e.g. [3, "red"]')
        raw, given = raw
        colour = given.strip().lower()
        if colour not in CSS_COLOURS and not HEX_COLOUR.fullmatch(colour):
            quoted = json.dumps(given[:40])  # enough to recognise it
            raise _invalid(
                f"{label}: the colour {quoted} is not a CSS colour name (red, steelblue, ...) "
                "nor #rrggbb"
            )
    return Counter(name, _value(label, raw, settings), colour)


def _value(label: str, raw: Any, settings: Settings) -> int | float | str:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _invalid(f"{label}: a value must be a number or a string, or [value, colour]")
    if isinstance(raw, str):
        if len(raw) > settings.max_counter_value_length:
            raise _invalid(
                f"{label}: a string value may be at most {settings.max_counter_value_length} "
                "characters long (PROGRESS_MAX_COUNTER_VALUE_LENGTH)"
            )
        _check_text(label, "its value", raw)
        return raw
    if not (math.isfinite(raw) and abs(raw) <= MAX_NUMBER):
        raise _invalid(f"{label}: a number must be finite and at most {MAX_NUMBER:g} in size")
    return raw


def _check_text(label: str, what: str, text: str) -> None:
    if not is_unicode(text):
        raise _invalid(
            f"{label}: {what} must be valid Unicode (a \\uD800-\\uDFFF escape must be half of "
            "a surrogate pair)"
        )
    if _CONTROL.search(text):
        raise _invalid(f"{label}: {what} must not contain control characters or line breaks")


def _invalid(rule: str) -> falcon.HTTPInvalidParam:
    return falcon.HTTPInvalidParam(rule, FIELD)
