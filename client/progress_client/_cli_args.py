"""Command line values: the types argparse checks them with, and the HTTP timeout they set."""

from __future__ import annotations

import argparse
import math

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
