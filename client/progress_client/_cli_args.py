"""Command line values: the types argparse checks them with, and the HTTP timeout they set."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

DEFAULT_HTTP_TIMEOUT = 10.0
CREATE_HTTP_TIMEOUT = 30.0  # create answers once the first chart is drawn


def http_timeout(args: argparse.Namespace, default: float = DEFAULT_HTTP_TIMEOUT) -> float:
    return getattr(args, "http_timeout", default)


def number_arg(text: str) -> str:
    """A finite number, passed on as typed (so '5' stays '5')."""
    _float_arg(text)
    return text.strip()


def _at_least(parse, low: float, strictly: bool):
    """An argparse type: parse, then insist on > low (strictly) or >= low."""

    def check(text: str):
        value = parse(text)
        if value < low or (strictly and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strictly else '>='} {low}: {text!r}")
        return value

    return check


def _float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


positive_float = _at_least(_float_arg, 0, strictly=True)
non_negative_float = _at_least(_float_arg, 0, strictly=False)
positive_int = _at_least(_int_arg, 0, strictly=True)
non_negative_int = _at_least(_int_arg, 0, strictly=False)


_COLOUR = re.compile(r"#[0-9a-fA-F]{6}|[A-Za-z]{3,20}")


def counter_arg(text: str) -> tuple[str, Any]:
    """--counter NAME=VALUE[:COLOUR]: VALUE a number if it reads as one, else text; a last
    `:word` is its colour when it looks like one (a CSS colour name or #rrggbb)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[:COLOUR], got {text!r}")
    head, colon, colour = value.rpartition(":")
    if colon and _COLOUR.fullmatch(colour):
        return name, [_number_or_text(head), colour]
    return name, _number_or_text(value)


def _number_or_text(text: str) -> Any:
    for parse in (int, float):
        try:
            number = parse(text)
        except ValueError:
            continue
        if math.isfinite(number):
            return number
    return text
