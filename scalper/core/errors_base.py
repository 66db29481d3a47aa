"""The typed error every core validator raises.

Core code rejects bad input at construction time with an error that names the offending
field, so an operator (or the journal) sees ``quantity: must be positive, got -1`` rather
than a stack trace from deep inside a decision.
"""

__all__ = ["CoreValueError"]


class CoreValueError(ValueError):
    """Bad input to a core constructor or function.

    Attributes:
        field: the name of the offending field or argument.
        reason: a human-readable explanation, without the field name.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
