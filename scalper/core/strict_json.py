"""Strict JSON parsing: one rule for every place scalper reads JSON text it must trust.

Python's :func:`json.loads` accepts ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON),
turns a number too large for a double into ``inf``, and silently keeps the last of two
equal object keys (which of the two counts is parser-dependent: ambiguous input). A
journal row, an operator API body or a replayed payload with any of those is refused,
with the same words wherever it is read.
"""

import json
import math
from typing import Any

__all__ = ["StrictJsonError", "loads_strict"]


class StrictJsonError(ValueError):
    """Valid-looking JSON that scalper refuses (NaN/Infinity, overflow, a repeated key)."""


def _reject_constant(name: str) -> Any:
    raise StrictJsonError(f"contains {name}, which is not JSON (NaN and Infinity are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {text} overflows to infinity")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJsonError(f"object key {key!r} appears twice (ambiguous JSON)")
        out[key] = value
    return out


def loads_strict(text: str) -> Any:
    """Parse ``text`` as strict JSON.

    Raises:
        StrictJsonError: NaN/Infinity, a number that overflows a double, a repeated key.
        ValueError: any other invalid JSON (:class:`json.JSONDecodeError`, an integer with
            too many digits).
        RecursionError: nesting too deep for the parser.
    """
    return json.loads(
        text,
        parse_constant=_reject_constant,
        parse_float=_finite_float,
        object_pairs_hook=_no_duplicate_keys,
    )
