"""attrs validators shared by the actors' config classes (one message per rule)."""

import math

import attrs

__all__ = ["count", "positive"]


def positive(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    """A positive finite number (seconds, rates); a bool is refused, not read as 0/1."""
    if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive finite number, got {value!r}")


def count(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    """An integer >= 1 (attempts, confirmations, limits); a bool is refused."""
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")
