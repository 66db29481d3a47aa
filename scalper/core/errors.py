"""Venue error classification: what a failed request means for the order it carried.

Theory of operation
-------------------

A failed request is evidence about the venue's state, and the first question is never
"should we retry?" but "could the order exist now?". Getting that wrong is how a bot ends up
with two entries (a blind resend after a lost ack, I7) or an unprotected position (a stop
believed placed that never was). :func:`classify_error` answers with an
:class:`ErrorVerdict` whose :class:`ErrorClass` tells the caller which of five paths to take:

``RETRYABLE``
    Definitely not executed (rate limiter, overload shedding, stale timestamp, transport
    failure before the request was written). Resend the *same* request, same client order
    id, after a bounded backoff (:mod:`scalper.core.retry`).
``RETRYABLE_WITH_MODIFICATION``
    Definitely not executed, and a well-defined change to the request can make it acceptable
    (drop a parameter the mode does not take, move a stop that would trigger at once, reprice
    a post-only order). The caller decides the change; it is a new decision, not a blind retry.
``IDEMPOTENT_SAFE``
    The effect the caller wanted, or the fact it needed, is already known: -4116 on create
    proves the order exists and is open; -2011 on cancel means "not open now" (cancelled,
    expired *or filled*: the caller cross-checks the status, I3); -2013 on a query is the
    answer "no such order". Never retry, never mint a new client order id because of it.
``AMBIGUOUS``
    The order may or may not exist (503 "Unknown error", other 5xx, 408, -1000, -1006, -1007,
    a transport failure after the request was written). A mutation is never resent; the
    outcome is resolved by querying the client order id (I4, I7), under the *resolve* retry
    policy. On a read (``Operation.QUERY``) the same conditions are merely ``RETRYABLE``:
    a query has no effect to be ambiguous about.
``FATAL``
    Rejected and resending cannot help (bad signature, filter failure, insufficient margin,
    an unknown code). Stop, journal, surface.

Rules
-----

* **Data, not if-chains.** Each venue has an :class:`ErrorTable`: an ordered tuple of
  :class:`ErrorRule` rows, first match wins, with a catch-all default. A row matches on any
  combination of HTTP status set, venue code set, case-insensitive message substrings (any
  of) and operation set; an empty criterion matches anything.
* **Ambiguity first.** Rows that say "outcome unknown" come before rows that say "not
  executed", so a contradictory response (say 503 with code -1000 and a "Service
  Unavailable." text) lands on the safe side. The only rows ahead of them are 418/429: the
  rate limiter rejects before anything is processed (ccxt checks them first for the same
  reason).
* **5xx is ambiguous for mutations** except the three 503 variants Binance documents as
  "100% failure": "Service Unavailable.", the -1001 "Internal error; unable to process your
  request" text and -1008 (server busy / request throttled). A body code does not override a
  5xx status: a query after a doubtful reject costs one request, a wrong "rejected" can cost a
  duplicate fill.
* **Mutations are CREATE, CANCEL and OTHER.** ``Operation.OTHER`` (the default) is treated as
  a mutation so that a caller who forgets to say what it did gets the conservative answer.
* **Unknown codes are FATAL** (never retried in a loop; an operator looks at them), unless
  the HTTP status alone already says more (5xx, 408, 418, 429, 403).
* **Totality.** Classification never raises for any status, code or message; the only error
  is an unknown venue name (a configuration mistake that must not be papered over).
* ``retry_after_s`` (the ``Retry-After`` header) becomes ``backoff_hint_s`` on retryable
  verdicts when it is a finite non-negative number; a nonsensical header is ignored. An IP
  ban (418) without the header gets the minimum documented ban, 120 s.

Sources: ``reference/binance_usdm.md`` sections 6 (codes, outcome classification) and 7
(HTTP semantics). Serves I2 (only RETRYABLE classes feed bounded retries), I3 (cancel
"not open" is idempotent success pending a status check), I4 and I7 (ambiguous outcomes are
resolved by evidence, never by a resend).
"""

import enum
import math
import re
import types
from collections.abc import Iterable, Mapping

import attrs

from scalper.core.errors_base import CoreValueError

__all__ = [
    "BINANCE_USDM_TABLE",
    "ERROR_TABLES",
    "MUTATING_OPERATIONS",
    "ErrorClass",
    "ErrorRule",
    "ErrorTable",
    "ErrorVerdict",
    "Operation",
    "classify_error",
    "classify_transport_failure",
]

_REASON_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class ErrorClass(enum.StrEnum):
    """What the caller may do after a failed request (see the module docstring)."""

    RETRYABLE = "RETRYABLE"
    RETRYABLE_WITH_MODIFICATION = "RETRYABLE_WITH_MODIFICATION"
    IDEMPOTENT_SAFE = "IDEMPOTENT_SAFE"
    AMBIGUOUS = "AMBIGUOUS"
    FATAL = "FATAL"


class Operation(enum.StrEnum):
    """What the failed request tried to do: the same code means different things per operation."""

    CREATE = "CREATE"
    CANCEL = "CANCEL"
    QUERY = "QUERY"
    OTHER = "OTHER"

    @property
    def is_mutation(self) -> bool:
        """True unless the request was a pure read (OTHER counts as a mutation, conservatively)."""
        return self is not Operation.QUERY


#: Operations whose unknown outcome is AMBIGUOUS (everything but a read).
MUTATING_OPERATIONS = frozenset({Operation.CREATE, Operation.CANCEL, Operation.OTHER})


@attrs.frozen
class ErrorVerdict:
    """The classification of one failed request.

    Attributes:
        error_class: which path the caller takes.
        reason: snake_case tag for the journal (``unknown_error_503``, ``rate_limited``, ...).
        http_status: the HTTP status, if a response arrived.
        code: the venue's error code, if the body carried one.
        order_may_exist: the venue may hold, or have held, an order for this request: do not
            conclude it is absent and never mint a new client order id on this evidence.
            True for every AMBIGUOUS verdict, for -4116 on create and for "not open now"
            answers to a cancel (the order may have filled).
        order_exists: the error *proves* an order with this client order id exists (-4116:
            it is open right now).
        backoff_hint_s: the wait the venue asked for (``Retry-After``), or the table's
            minimum for the condition (an IP ban), if any.
    """

    error_class: ErrorClass
    reason: str
    http_status: int | None
    code: int | None
    order_may_exist: bool
    order_exists: bool
    backoff_hint_s: float | None

    @property
    def retryable(self) -> bool:
        """True if the request may be resent unchanged after a backoff."""
        return self.error_class is ErrorClass.RETRYABLE


def _check_reason(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if not _REASON_RE.match(value):
        raise CoreValueError(attribute.name, f"must be a snake_case tag, got {value!r}")


def _fold_messages(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        # A bare string would silently become a tuple of one-letter substrings.
        raise CoreValueError("messages", "must be a sequence of substrings, not one string")
    return tuple(m.casefold() for m in value)


def _int_set(value: Iterable[int]) -> frozenset[int]:
    return frozenset(value)


def _op_set(value: Iterable[Operation]) -> frozenset[Operation]:
    return frozenset(Operation(op) for op in value)


def _rule_tuple(value: Iterable["ErrorRule"]) -> tuple["ErrorRule", ...]:
    return tuple(value)


def _check_messages(
    _inst: object, attribute: "attrs.Attribute[tuple[str, ...]]", value: tuple[str, ...]
) -> None:
    if any(not m for m in value):
        raise CoreValueError(attribute.name, "substrings must be non-empty")


def _check_backoff(
    _inst: object, attribute: "attrs.Attribute[float | None]", value: float | None
) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise CoreValueError(attribute.name, f"must be a finite number >= 0, got {value!r}")


@attrs.frozen
class ErrorRule:
    """One row of an error table: match criteria and the verdict they imply.

    Every non-empty criterion must hold for the row to match; an empty one matches anything
    (including an absent status or code). ``messages`` are case-insensitive substrings, any of
    which may occur in the venue's message.
    """

    reason: str = attrs.field(validator=_check_reason)
    error_class: ErrorClass = attrs.field(converter=ErrorClass)
    statuses: frozenset[int] = attrs.field(default=frozenset(), converter=_int_set)
    codes: frozenset[int] = attrs.field(default=frozenset(), converter=_int_set)
    messages: tuple[str, ...] = attrs.field(
        default=(), converter=_fold_messages, validator=_check_messages
    )
    operations: frozenset[Operation] = attrs.field(default=frozenset(), converter=_op_set)
    order_may_exist: bool = False
    order_exists: bool = False
    default_backoff_s: float | None = attrs.field(default=None, validator=_check_backoff)

    def __attrs_post_init__(self) -> None:
        # The two flags carry the safety contract; a row must not contradict its class.
        if self.error_class is ErrorClass.AMBIGUOUS and not self.order_may_exist:
            raise CoreValueError("order_may_exist", "must be True for an AMBIGUOUS rule")
        if self.order_exists and not self.order_may_exist:
            raise CoreValueError("order_may_exist", "must be True when order_exists is True")

    def matches(
        self, http_status: int | None, code: int | None, folded_message: str, operation: Operation
    ) -> bool:
        """True if this row applies. ``folded_message`` must already be casefolded."""
        if self.statuses and http_status not in self.statuses:
            return False
        if self.codes and code not in self.codes:
            return False
        if self.operations and operation not in self.operations:
            return False
        return not self.messages or any(m in folded_message for m in self.messages)


@attrs.frozen
class ErrorTable:
    """A venue's ordered classification rows; the first matching row decides."""

    venue: str
    rules: tuple[ErrorRule, ...] = attrs.field(converter=_rule_tuple)
    default: ErrorRule

    def __attrs_post_init__(self) -> None:
        d = self.default
        if d.statuses or d.codes or d.messages or d.operations:
            raise CoreValueError("default", "the default rule must have no match criteria")

    def rule_for(
        self, http_status: int | None, code: int | None, message: str, operation: Operation
    ) -> ErrorRule:
        """Return the first matching row, or the default."""
        folded = message.casefold()
        for rule in self.rules:
            if rule.matches(http_status, code, folded, operation):
                return rule
        return self.default

    def classify(
        self,
        http_status: int | None,
        code: int | None,
        message: str = "",
        *,
        operation: Operation = Operation.OTHER,
        retry_after_s: float | None = None,
    ) -> ErrorVerdict:
        """Classify one failed request against this table (see :func:`classify_error`)."""
        rule = self.rule_for(http_status, code, message, operation)
        return _verdict(rule, http_status, code, retry_after_s)


def _sane_seconds(value: float | None) -> float | None:
    """A header value as seconds, or None if absent or nonsensical (venue input never raises)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _verdict(
    rule: ErrorRule, http_status: int | None, code: int | None, retry_after_s: float | None
) -> ErrorVerdict:
    hint = rule.default_backoff_s
    retry_after = _sane_seconds(retry_after_s)
    if rule.error_class is ErrorClass.RETRYABLE and retry_after is not None:
        # The venue knows when its limiter or ban lifts; the table's minimum is for when it
        # does not say.
        hint = retry_after
    return ErrorVerdict(
        error_class=rule.error_class,
        reason=rule.reason,
        http_status=http_status,
        code=code,
        order_may_exist=rule.order_may_exist,
        order_exists=rule.order_exists,
        backoff_hint_s=hint,
    )


# --------------------------------------------------------------------------------------------
# Row builders. They only make the table below shorter to read; every row is still data.

_R = ErrorClass.RETRYABLE
_RWM = ErrorClass.RETRYABLE_WITH_MODIFICATION
_SAFE = ErrorClass.IDEMPOTENT_SAFE
_FATAL = ErrorClass.FATAL
_QUERY = frozenset({Operation.QUERY})
_5XX = frozenset(range(500, 600))
_IP_BAN_MIN_S = 120.0  # "bans scale from 2 minutes to 3 days"


def _unknown_outcome(
    reason: str,
    *,
    statuses: Iterable[int] = (),
    codes: Iterable[int] = (),
    messages: tuple[str, ...] = (),
) -> tuple[ErrorRule, ErrorRule]:
    """Outcome unknown: AMBIGUOUS for mutations, plainly RETRYABLE for a read."""
    return (
        ErrorRule(reason, _R, statuses=statuses, codes=codes, messages=messages, operations=_QUERY),
        ErrorRule(
            reason,
            ErrorClass.AMBIGUOUS,
            statuses=statuses,
            codes=codes,
            messages=messages,
            operations=MUTATING_OPERATIONS,
            order_may_exist=True,
        ),
    )


def _codes(error_class: ErrorClass, table: Mapping[int, str]) -> tuple[ErrorRule, ...]:
    return tuple(ErrorRule(reason, error_class, codes={code}) for code, reason in table.items())


# Definite rejections (Binance "REJ"): resending the same request cannot help.
_BINANCE_FATAL_CODES: Mapping[int, str] = {
    -1002: "unauthorized",
    -1004: "ip_already_whitelisted",
    -1005: "ip_not_whitelisted",
    -1010: "error_msg_received",
    -1011: "ip_not_allowed",
    -1013: "invalid_message",
    -1014: "unsupported_order_combination",
    -1016: "service_shutting_down",
    -1020: "unsupported_operation",
    -1022: "invalid_signature",
    -1023: "start_time_after_end_time",
    -1099: "not_found_or_unauthorized",
    -1100: "illegal_chars",
    -1101: "too_many_parameters",
    -1102: "mandatory_param_missing",
    -1103: "unknown_param",
    -1104: "unread_parameters",
    -1105: "param_empty",
    -1108: "bad_asset",
    -1109: "bad_account",
    -1110: "bad_instrument_type",
    -1111: "bad_precision",
    -1112: "no_depth",
    -1113: "withdraw_not_negative",
    -1115: "invalid_time_in_force",
    -1116: "invalid_order_type",
    -1117: "invalid_side",
    -1118: "empty_client_order_id",
    -1119: "empty_orig_client_order_id",
    -1120: "bad_interval",
    -1121: "bad_symbol",
    -1122: "invalid_symbol_status",
    -1125: "invalid_listen_key",
    -1126: "asset_not_supported",
    -1127: "lookup_interval_too_big",
    -1128: "invalid_parameter_combination",
    -1130: "invalid_parameter",
    -1136: "invalid_new_order_resp_type",
    -2010: "new_order_rejected",
    -2014: "bad_api_key_format",
    -2015: "api_key_rejected",
    -2016: "no_trading_window",
    -2017: "api_keys_locked",
    -2018: "insufficient_balance",
    -2019: "insufficient_margin",
    -2020: "unable_to_fill",
    # Never "modify" a rejected reduce-only order by stripping reduceOnly: that turns an exit
    # into a risk-increasing order. Resizing it needs a reconciled position: a new decision.
    -2022: "reduce_only_rejected",
    -2023: "user_in_liquidation",
    -2024: "position_not_sufficient",
    -2025: "max_open_orders_exceeded",
    -2026: "reduce_only_order_type_not_supported",
    -2027: "max_position_at_leverage",
    -2028: "leverage_too_small_for_margin",
    -4000: "invalid_order_status",
    -4001: "price_less_than_zero",
    -4002: "price_above_max_price",
    -4003: "qty_less_than_zero",
    -4004: "qty_below_min_qty",
    -4005: "qty_above_max_qty",
    -4006: "stop_price_less_than_zero",
    -4007: "stop_price_above_max_price",
    -4008: "tick_size_less_than_zero",
    -4009: "max_price_less_than_min_price",
    -4010: "max_qty_less_than_min_qty",
    -4011: "step_size_less_than_zero",
    -4012: "max_num_orders_less_than_zero",
    -4013: "price_below_min_price",
    -4014: "price_not_on_tick",
    # Our ids are derived and checked against Binance's regex; an invalid one is a bug, and
    # minting a different id to get past it would break the one-order-per-intent rule (I7).
    -4015: "invalid_client_order_id",
    -4016: "price_above_multiplier_up",
    -4017: "multiplier_up_less_than_zero",
    -4018: "multiplier_down_less_than_zero",
    -4019: "composite_scale_overflow",
    -4020: "target_strategy_invalid",
    -4021: "invalid_depth_limit",
    -4022: "wrong_market_status",
    -4023: "qty_not_on_step",
    -4024: "price_below_multiplier_down",
    -4025: "multiplier_decimal_less_than_zero",
    -4026: "commission_invalid",
    -4027: "invalid_account_type",
    -4028: "invalid_leverage",
    -4029: "invalid_tick_size_precision",
    -4030: "invalid_step_size_precision",
    -4031: "invalid_working_type",
    -4032: "max_cancel_order_size_exceeded",
    -4033: "insurance_account_not_found",
    -4044: "invalid_balance_type",
    -4045: "max_stop_orders_exceeded",
    -4047: "open_orders_block_margin_type_change",
    -4048: "position_blocks_margin_type_change",
    -4049: "add_isolated_margin_rejected",
    -4050: "cross_balance_insufficient",
    -4051: "isolated_balance_insufficient",
    -4053: "auto_add_crossed_margin_rejected",
    -4054: "add_margin_no_position",
    -4055: "amount_must_be_positive",
    -4056: "invalid_api_key_type",
    -4057: "invalid_rsa_public_key",
    -4058: "max_price_too_large",
    -4060: "invalid_position_side",
    -4061: "position_side_mismatch",
    -4062: "reduce_only_conflict",
    -4082: "invalid_batch_size",
    -4083: "batch_place_failed",
    -4084: "method_not_allowed_yet",
    -4085: "invalid_notional_limit_coef",
    -4086: "invalid_price_spread_threshold",
    -4087: "reduce_only_permission",
    -4088: "no_place_order_permission",
    -4104: "invalid_contract_type",
    -4105: "symbol_reduce_only",
    -4106: "symbol_reduce_only",
    -4107: "symbol_reduce_only",
    -4109: "inactive_account",
    -4114: "invalid_client_tran_id",
    -4115: "duplicated_client_tran_id",
    -4118: "reduce_only_margin_check_failed",
    -4120: "use_algo_endpoint",
    -4131: "market_order_percent_price_reject",
    -4135: "invalid_activation_price",
    -4136: "target_strategy_invalid",
    -4137: "quantity_with_close_position",
    -4138: "reduce_only_required_with_close_position",
    -4139: "order_type_cannot_be_market",
    -4140: "invalid_opening_position_status",
    -4141: "symbol_closed",
    -4144: "invalid_pair",
    -4161: "isolated_leverage_reduction_rejected",
    -4164: "min_notional",
    -4165: "invalid_time_interval",
    -4183: "price_above_stop_multiplier",
    -4184: "price_below_stop_multiplier",
    -4189: "account_reduce_only",
    -4192: "cooling_off_period",
    -4202: "adjust_leverage_rejected",
    -4203: "adjust_leverage_rejected",
    -4205: "adjust_leverage_rejected",
    -4206: "adjust_leverage_rejected",
    -4208: "adjust_leverage_rejected",
    -4209: "adjust_leverage_rejected",
    -4210: "stop_price_above_multiplier_limit",
    -4211: "stop_price_below_multiplier_limit",
    -4400: "quantitative_rule_reduce_only",
    -4401: "large_position_reduce_only",
    -4402: "compliance_restricted",
    -4403: "compliance_leverage_cap",
    -4531: "position_mode_sync_required",
    -5021: "fok_rejected",
    -5024: "symbol_not_trading_for_amend",
    -5025: "limit_order_only",
    -5026: "max_modify_count_exceeded",
    -5029: "modification_min_notional",
    -5037: "invalid_price_match",
    -5038: "unsupported_price_match_type",
    -5039: "invalid_self_trade_prevention_mode",
    -5040: "invalid_good_till_date",
    -5041: "bbo_order_rejected",
    -5047: "original_order_not_reduce_only",
}

# Not executed; resending the same request after a backoff is documented as safe.
_BINANCE_RETRYABLE_CODES: Mapping[int, str] = {
    -1001: "internal_error",
    -1008: "server_busy",
    -1015: "order_rate_limited",
    -1021: "timestamp_outside_recv_window",  # after a clock resync
    -4117: "stop_order_triggering",
    -5028: "timestamp_outside_me_recv_window",
    -5043: "modification_pending",
}

# Not executed; a specific, mechanical change to the request can make it acceptable.
_BINANCE_MODIFY_CODES: Mapping[int, str] = {
    -1106: "param_not_required",  # e.g. reduceOnly sent in hedge mode
    -1114: "tif_not_required",
    -2021: "would_immediately_trigger",
    -4142: "would_immediately_trigger",
    -5022: "post_only_would_take",
}

# The desired state already holds ("no need to change ...").
_BINANCE_NO_CHANGE_CODES: Mapping[int, str] = {
    -4046: "margin_type_unchanged",
    -4052: "auto_add_margin_unchanged",
    -4059: "position_side_unchanged",
    -5027: "modify_no_change",
}

_CANCEL_LIKE = frozenset({Operation.CANCEL, Operation.OTHER})

BINANCE_USDM_TABLE = ErrorTable(
    venue="binance_usdm",
    rules=(
        # 1. The rate limiter rejects before anything is processed.
        ErrorRule("ip_banned", _R, statuses={418}, default_backoff_s=_IP_BAN_MIN_S),
        ErrorRule("rate_limited", _R, statuses={429}),
        # 2. Outcome unknown. Evaluated before every "not executed" row.
        *_unknown_outcome("unknown_error_503", statuses={503}, messages=("unknown error",)),
        *_unknown_outcome("unknown_error", messages=("unknown error",)),
        *_unknown_outcome("unknown_error", codes={-1000}),
        *_unknown_outcome("unexpected_response", codes={-1006}),
        *_unknown_outcome("backend_timeout", codes={-1007}),
        *_unknown_outcome("cancel_all_failed", codes={-2012}),
        *_unknown_outcome("backend_timeout_408", statuses={408}),
        *_unknown_outcome(
            "execution_status_unknown",
            messages=("execution status unknown", "status unknown", "timeout", "timed out"),
        ),
        # 3. The 503 variants documented as "100% failure".
        ErrorRule("internal_error", _R, statuses={503}, codes={-1001}),
        ErrorRule(
            "internal_error", _R, statuses={503}, messages=("internal error; unable to process",)
        ),
        ErrorRule("server_busy", _R, statuses={503}, codes={-1008}),
        ErrorRule(
            "server_busy",
            _R,
            statuses={503},
            messages=("server is currently overloaded", "request throttled"),
        ),
        ErrorRule("service_unavailable_503", _R, statuses={503}, messages=("service unavailable",)),
        # 4. Any other 5xx: Binance-side trouble; a mutation may have gone through.
        *_unknown_outcome("server_error_5xx", statuses=_5XX),
        # 5. Codes whose meaning depends on the operation.
        ErrorRule(
            "duplicate_client_order_id",
            _SAFE,
            codes={-4116},
            order_may_exist=True,
            order_exists=True,
        ),
        ErrorRule(
            "duplicate_client_algo_id",
            _SAFE,
            codes={-20132},
            order_may_exist=True,
            order_exists=True,
        ),
        # -2011 "not cancelled now": unknown id or already final, possibly FILLED.
        ErrorRule(
            "cancel_not_open", _SAFE, codes={-2011}, operations=_CANCEL_LIKE, order_may_exist=True
        ),
        ErrorRule("cancel_rejected", _FATAL, codes={-2011}),
        ErrorRule(
            "cancel_not_open",
            _SAFE,
            codes={-2013},
            operations={Operation.CANCEL},
            order_may_exist=True,
        ),
        ErrorRule(
            "order_not_found", _SAFE, codes={-2013}, operations={Operation.QUERY, Operation.OTHER}
        ),
        ErrorRule("no_such_order", _FATAL, codes={-2013}),
        ErrorRule(
            "ip_banned", _R, codes={-1003}, messages=("banned",), default_backoff_s=_IP_BAN_MIN_S
        ),
        ErrorRule("rate_limited", _R, codes={-1003}),
        # 6. Codes with one meaning.
        *_codes(_R, _BINANCE_RETRYABLE_CODES),
        *_codes(_RWM, _BINANCE_MODIFY_CODES),
        *_codes(_SAFE, _BINANCE_NO_CHANGE_CODES),
        *_codes(_FATAL, _BINANCE_FATAL_CODES),
        # 7. Bodies without a recognised code: match the documented texts (they vary, so
        #    substrings, case-insensitive).
        ErrorRule(
            "duplicate_client_order_id",
            _SAFE,
            messages=("clientorderid is duplicated",),
            order_may_exist=True,
            order_exists=True,
        ),
        ErrorRule(
            "cancel_not_open",
            _SAFE,
            messages=("unknown order sent", "order does not exist"),
            operations=_CANCEL_LIKE,
            order_may_exist=True,
        ),
        ErrorRule("order_not_found", _SAFE, messages=("order does not exist",), operations=_QUERY),
        ErrorRule(
            "timestamp_outside_recv_window",
            _R,
            messages=("outside of the recvwindow", "ahead of the server's time"),
        ),
        ErrorRule("invalid_signature", _FATAL, messages=("signature for this request",)),
        ErrorRule("ip_banned", _R, messages=("ip banned",), default_backoff_s=_IP_BAN_MIN_S),
        ErrorRule("rate_limited", _R, messages=("too many requests", "too many new orders")),
        ErrorRule("would_immediately_trigger", _RWM, messages=("would immediately trigger",)),
        ErrorRule("reduce_only_rejected", _FATAL, messages=("reduceonly order is rejected",)),
        ErrorRule("maintenance", _R, messages=("under maintenance",)),
        # 8. Status-only: 403 is the WAF, documented as not executed.
        ErrorRule("waf_limited", _R, statuses={403}),
    ),
    default=ErrorRule("unclassified_error", _FATAL),
)

#: Error tables by venue name. The simulated exchange speaks Binance's wire format.
ERROR_TABLES: Mapping[str, ErrorTable] = types.MappingProxyType(
    {"binance_usdm": BINANCE_USDM_TABLE, "sim": BINANCE_USDM_TABLE}
)


def classify_error(
    http_status: int | None,
    code: int | None,
    message: str = "",
    *,
    operation: Operation = Operation.OTHER,
    venue: str = "binance_usdm",
    retry_after_s: float | None = None,
) -> ErrorVerdict:
    """Classify a venue error response.

    Args:
        http_status: the HTTP status, or ``None`` if unknown (e.g. a WebSocket API error).
        code: the venue's error code from the body, or ``None``.
        message: the venue's message text (matched case-insensitively by substring).
        operation: what the request tried to do; OTHER is treated as a mutation.
        venue: which error table to use (see :data:`ERROR_TABLES`).
        retry_after_s: the ``Retry-After`` header in seconds, if the response had one.

    Returns:
        The verdict; never raises for any status, code or message.

    Raises:
        CoreValueError: if ``venue`` has no error table.
    """
    table = ERROR_TABLES.get(venue)
    if table is None:
        raise CoreValueError(
            "venue", f"no error table for {venue!r}; known: {sorted(ERROR_TABLES)}"
        )
    return table.classify(
        http_status, code, message, operation=operation, retry_after_s=retry_after_s
    )


def classify_transport_failure(
    *, request_written: bool, operation: Operation = Operation.OTHER
) -> ErrorVerdict:
    """Classify a failure with no venue response (timeout, reset, TLS error).

    Before the request bytes were written nothing reached the venue: RETRYABLE. After, the
    venue may have acted on it: AMBIGUOUS for a mutation (resolve by query), RETRYABLE for a
    read. Callers that cannot tell whether the write completed must pass ``True``.
    """
    if not request_written:
        reason, error_class, may_exist = "transport_before_write", _R, False
    elif operation.is_mutation:
        reason, error_class, may_exist = "transport_after_write", ErrorClass.AMBIGUOUS, True
    else:
        reason, error_class, may_exist = "transport_after_write", _R, False
    return ErrorVerdict(
        error_class=error_class,
        reason=reason,
        http_status=None,
        code=None,
        order_may_exist=may_exist,
        order_exists=False,
        backoff_hint_s=None,
    )
