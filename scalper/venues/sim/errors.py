"""Binance USD-M rejections as the simulated exchange raises them.

Theory of operation
-------------------

Every refusal of the simulated exchange is a :class:`SimRejection` carrying Binance's own
numeric ``code``, its exact ``msg`` text and the HTTP status the loopback server must answer
with. The codes and texts come from the USD-M error-code page (see
``reference/binance_usdm.md`` §6); templated texts (``%s`` in the docs) are filled in the
way Binance fills them (``Mandatory parameter 'price' was not sent, ...``).

A rejection is a *definite* failure: nothing happened at the exchange (I4 treats it as
evidence that the request did not take effect). Outcomes that are *unknown* (timeouts,
-1006, -1007, 5xx "Unknown error") are never produced by the engine itself: the fault
injector fabricates them around a request that the engine did or did not apply.

:class:`ErrorCode` names every code the engine emits, so callers match on names rather than
magic numbers, and :func:`reject` builds a rejection from the catalogue.
"""

import enum

__all__ = [
    "ErrorCode",
    "SimRejection",
    "reject",
]


class ErrorCode(enum.IntEnum):
    """The Binance codes the engine emits, with Binance's names."""

    TOO_MANY_REQUESTS = -1003
    TOO_MANY_ORDERS = -1015
    UNSUPPORTED_OPERATION = -1020
    MANDATORY_PARAM_EMPTY_OR_MALFORMED = -1102
    PARAM_NOT_REQUIRED = -1106
    BAD_PRECISION = -1111
    INVALID_ORDER_TYPE = -1116
    BAD_SYMBOL = -1121
    INVALID_PARAMETER = -1130
    CANCEL_REJECTED = -2011
    NO_SUCH_ORDER = -2013
    MARGIN_NOT_SUFFICIENT = -2019
    ORDER_WOULD_IMMEDIATELY_TRIGGER = -2021
    REDUCE_ONLY_REJECT = -2022
    MAX_OPEN_ORDER_EXCEEDED = -2025
    MAX_LEVERAGE_RATIO = -2027
    PRICE_LESS_THAN_ZERO = -4001
    PRICE_GREATER_THAN_MAX_PRICE = -4002
    QTY_LESS_THAN_ZERO = -4003
    QTY_LESS_THAN_MIN_QTY = -4004
    QTY_GREATER_THAN_MAX_QTY = -4005
    STOP_PRICE_LESS_THAN_ZERO = -4006
    STOP_PRICE_GREATER_THAN_MAX_PRICE = -4007
    PRICE_LESS_THAN_MIN_PRICE = -4013
    PRICE_NOT_INCREASED_BY_TICK_SIZE = -4014
    INVALID_CL_ORD_ID_LEN = -4015
    PRICE_HIGHER_THAN_MULTIPLIER_UP = -4016
    QTY_NOT_INCREASED_BY_STEP_SIZE = -4023
    PRICE_LOWER_THAN_MULTIPLIER_DOWN = -4024
    INVALID_LEVERAGE = -4028
    MAX_STOP_ORDER_EXCEEDED = -4045
    NO_NEED_TO_CHANGE_POSITION_SIDE = -4059
    POSITION_SIDE_NOT_MATCH = -4061
    POSITION_SIDE_CHANGE_EXISTS_OPEN_ORDERS = -4067
    POSITION_SIDE_CHANGE_EXISTS_QUANTITY = -4068
    DUPLICATED_CLIENT_ORDER_ID = -4116
    STOP_ORDER_SWITCH_ALGO = -4120
    QUANTITY_EXISTS_WITH_CLOSE_POSITION = -4137
    MIN_NOTIONAL = -4164
    FOK_ORDER_REJECT = -5021
    GTX_ORDER_REJECT = -5022
    DUPLICATED_CLIENT_ALGO_ID = -20132


# Binance's texts; ``{}`` marks the places Binance's ``%s`` templates are filled.
_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.TOO_MANY_REQUESTS: (
        "Too many requests; current limit is {} requests per minute. "
        "Please use the websocket for live updates to avoid polling the API."
    ),
    ErrorCode.TOO_MANY_ORDERS: "Too many new orders; current limit is {} orders per {}.",
    ErrorCode.UNSUPPORTED_OPERATION: "This operation is not supported.",
    ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED: (
        "Mandatory parameter '{}' was not sent, was empty/null, or malformed."
    ),
    ErrorCode.PARAM_NOT_REQUIRED: "Parameter '{}' sent when not required.",
    ErrorCode.BAD_PRECISION: "Precision is over the maximum defined for this asset.",
    ErrorCode.INVALID_ORDER_TYPE: "Invalid orderType.",
    ErrorCode.BAD_SYMBOL: "Invalid symbol.",
    ErrorCode.INVALID_PARAMETER: "Data sent for parameter '{}' is not valid.",
    ErrorCode.CANCEL_REJECTED: "Unknown order sent.",
    ErrorCode.NO_SUCH_ORDER: "Order does not exist.",
    ErrorCode.MARGIN_NOT_SUFFICIENT: "Margin is insufficient.",
    ErrorCode.ORDER_WOULD_IMMEDIATELY_TRIGGER: "Order would immediately trigger.",
    ErrorCode.REDUCE_ONLY_REJECT: "ReduceOnly Order is rejected.",
    ErrorCode.MAX_OPEN_ORDER_EXCEEDED: "Reach max open order limit.",
    ErrorCode.MAX_LEVERAGE_RATIO: "Exceeded the maximum allowable position at current leverage.",
    ErrorCode.PRICE_LESS_THAN_ZERO: "Price less than 0.",
    ErrorCode.PRICE_GREATER_THAN_MAX_PRICE: "Price greater than max price.",
    ErrorCode.QTY_LESS_THAN_ZERO: "Quantity less than zero.",
    ErrorCode.QTY_LESS_THAN_MIN_QTY: "Quantity less than min quantity.",
    ErrorCode.QTY_GREATER_THAN_MAX_QTY: "Quantity greater than max quantity.",
    ErrorCode.STOP_PRICE_LESS_THAN_ZERO: "Stop price less than zero.",
    ErrorCode.STOP_PRICE_GREATER_THAN_MAX_PRICE: "Stop price greater than max price.",
    ErrorCode.PRICE_LESS_THAN_MIN_PRICE: "Price less than min price.",
    ErrorCode.PRICE_NOT_INCREASED_BY_TICK_SIZE: "Price not increased by tick size.",
    ErrorCode.INVALID_CL_ORD_ID_LEN: "Client order id is not valid.",
    ErrorCode.PRICE_HIGHER_THAN_MULTIPLIER_UP: "Price is higher than mark price multiplier cap.",
    ErrorCode.QTY_NOT_INCREASED_BY_STEP_SIZE: "Qty not increased by step size.",
    ErrorCode.PRICE_LOWER_THAN_MULTIPLIER_DOWN: "Price is lower than mark price multiplier floor.",
    ErrorCode.INVALID_LEVERAGE: "Leverage {} is not valid",
    ErrorCode.MAX_STOP_ORDER_EXCEEDED: "Reach max stop order limit.",
    ErrorCode.NO_NEED_TO_CHANGE_POSITION_SIDE: "No need to change position side.",
    ErrorCode.POSITION_SIDE_NOT_MATCH: "Order's position side does not match user's setting.",
    ErrorCode.POSITION_SIDE_CHANGE_EXISTS_OPEN_ORDERS: (
        "Position side cannot be changed if there exists open orders."
    ),
    ErrorCode.POSITION_SIDE_CHANGE_EXISTS_QUANTITY: (
        "Position side cannot be changed if there exists position."
    ),
    ErrorCode.DUPLICATED_CLIENT_ORDER_ID: "ClientOrderId is duplicated.",
    ErrorCode.STOP_ORDER_SWITCH_ALGO: (
        "Order type not supported for this endpoint. "
        "Please use the Algo Order API endpoints instead."
    ),
    ErrorCode.QUANTITY_EXISTS_WITH_CLOSE_POSITION: (
        "Quantity must be zero with closePosition equals true"
    ),
    ErrorCode.MIN_NOTIONAL: (
        "Order's notional must be no smaller than {} (unless you choose reduce only)"
    ),
    ErrorCode.FOK_ORDER_REJECT: (
        "Due to the order could not be filled immediately, the FOK order has been rejected."
    ),
    ErrorCode.GTX_ORDER_REJECT: (
        "Due to the order could not be executed as maker, the Post Only order will be rejected."
    ),
    # ccxt maps -20132 to "duplicate client algo id"; the exact live text is unconfirmed.
    ErrorCode.DUPLICATED_CLIENT_ALGO_ID: "ClientAlgoId is duplicated.",
}

_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.TOO_MANY_ORDERS: 429,
}


class SimRejection(Exception):  # noqa: N818 - the name says what it is: the venue said no
    """A definite refusal by the simulated exchange, in Binance's terms.

    Attributes:
        code: Binance's numeric error code (negative).
        message: Binance's ``msg`` text, exactly.
        http_status: the HTTP status the loopback server answers with.
        retry_after: seconds until a rate-limit window resets (429 only), else ``None``.
    """

    def __init__(
        self,
        code: int,
        message: str,
        http_status: int = 400,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def name(self) -> str:
        """Binance's symbolic name of the code (``DUPLICATED_CLIENT_ORDER_ID``), if known."""
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"CODE_{-self.code}"

    def __repr__(self) -> str:
        return f"SimRejection(code={self.code}, message={self.message!r})"


def reject(code: ErrorCode, *args: object, retry_after: float | None = None) -> SimRejection:
    """Build the rejection for ``code``, filling Binance's message template with ``args``."""
    template = _MESSAGES[code]
    message = template.format(*args) if args else template
    return SimRejection(
        int(code), message, http_status=_HTTP_STATUS.get(code, 400), retry_after=retry_after
    )
