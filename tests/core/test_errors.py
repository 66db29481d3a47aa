"""Error classification: table-driven examples from the Binance digest, plus properties.

The expectations below are written from ``reference/binance_usdm.md`` sections 6 and 7, not
from the implementation's tables, so a wrong row in the table fails here.
"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalper.core.errors import (
    BINANCE_USDM_TABLE,
    ERROR_TABLES,
    MUTATING_OPERATIONS,
    ErrorClass,
    ErrorRule,
    ErrorTable,
    Operation,
    classify_error,
    classify_transport_failure,
)
from scalper.core.errors_base import CoreValueError

R = ErrorClass.RETRYABLE
RWM = ErrorClass.RETRYABLE_WITH_MODIFICATION
SAFE = ErrorClass.IDEMPOTENT_SAFE
AMB = ErrorClass.AMBIGUOUS
FATAL = ErrorClass.FATAL
C, X, Q, OTH = Operation.CREATE, Operation.CANCEL, Operation.QUERY, Operation.OTHER

UNKNOWN_503 = "Unknown error, please check your request or try again later."
SERVICE_UNAVAILABLE = "Service Unavailable."
INTERNAL_ERROR = "Internal error; unable to process your request. Please try again."

# (status, code, message, operation, class, reason, order_may_exist, order_exists)
# fmt: off
CASES = [
    # Outcome unknown: the order may exist.
    (503, None, UNKNOWN_503, C, AMB, "unknown_error_503", True, False),
    (503, None, UNKNOWN_503, X, AMB, "unknown_error_503", True, False),
    (503, -1000, UNKNOWN_503, C, AMB, "unknown_error_503", True, False),
    (500, -1000, "An unknown error occured while processing the request.", C, AMB, "unknown_error", True, False),
    (400, -1006, "An unexpected response was received from the message bus. Execution status unknown.", C, AMB, "unexpected_response", True, False),
    (400, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown.", C, AMB, "backend_timeout", True, False),
    (None, -1007, "", X, AMB, "backend_timeout", True, False),
    (408, None, "", C, AMB, "backend_timeout_408", True, False),
    (500, None, "Request occur unknown error.", C, AMB, "unknown_error", True, False),
    (502, None, "Bad Gateway", C, AMB, "server_error_5xx", True, False),
    (504, None, "", X, AMB, "server_error_5xx", True, False),
    (400, -2012, "Batch cancel failure.", X, AMB, "cancel_all_failed", True, False),
    # The same conditions on a read are plain retries: a query has no effect.
    (503, None, UNKNOWN_503, Q, R, "unknown_error_503", False, False),
    (502, None, "", Q, R, "server_error_5xx", False, False),
    (408, None, "", Q, R, "backend_timeout_408", False, False),
    # Documented "100% failure" 503s: not executed.
    (503, None, SERVICE_UNAVAILABLE, C, R, "service_unavailable_503", False, False),
    (503, -1001, INTERNAL_ERROR, C, R, "internal_error", False, False),
    (503, None, INTERNAL_ERROR, C, R, "internal_error", False, False),
    (503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes.", C, R, "server_busy", False, False),
    (503, None, "Request throttled by system-level protection. Reduce-only/close-position orders are exempt. Please try again.", C, R, "server_busy", False, False),
    # Rate limits and bans.
    (429, -1003, "Too many requests; current limit is 2400 requests per minute.", C, R, "rate_limited", False, False),
    (429, None, "", C, R, "rate_limited", False, False),
    (418, -1003, "Way too many requests; IP banned until 1700000000000.", C, R, "ip_banned", False, False),
    (400, -1003, "Way too many requests; IP banned until 1700000000000.", C, R, "ip_banned", False, False),
    (400, -1015, "Too many new orders; current limit is 300 orders per TEN_SECONDS.", C, R, "order_rate_limited", False, False),
    (403, None, "", C, R, "waf_limited", False, False),
    # Clock and signature.
    (400, -1021, "Timestamp for this request is outside of the recvWindow.", C, R, "timestamp_outside_recv_window", False, False),
    (400, None, "Timestamp for this request was 1000ms ahead of the server's time.", C, R, "timestamp_outside_recv_window", False, False),
    (400, -5028, "Timestamp for this request is outside of the ME recvWindow.", C, R, "timestamp_outside_me_recv_window", False, False),
    (400, -1022, "Signature for this request is not valid.", C, FATAL, "invalid_signature", False, False),
    (400, None, "Signature for this request is not valid.", C, FATAL, "invalid_signature", False, False),
    # Duplicate client order id on create: the order exists and is open.
    (400, -4116, "ClientOrderId is duplicated.", C, SAFE, "duplicate_client_order_id", True, True),
    (400, None, "clientOrderId is duplicated", C, SAFE, "duplicate_client_order_id", True, True),
    # Cancel of an order that is not open now (maybe filled): idempotent, cross-check status.
    (400, -2011, "Unknown order sent.", X, SAFE, "cancel_not_open", True, False),
    (400, -2011, "CANCEL_REJECTED", X, SAFE, "cancel_not_open", True, False),
    (400, -2013, "Order does not exist.", X, SAFE, "cancel_not_open", True, False),
    (400, None, "Unknown order sent.", X, SAFE, "cancel_not_open", True, False),
    # Query of an order that does not exist: an answer, not an ambiguity.
    (400, -2013, "Order does not exist.", Q, SAFE, "order_not_found", False, False),
    (400, None, "Order does not exist.", Q, SAFE, "order_not_found", False, False),
    # Fix-and-resend.
    (400, -1106, "Parameter 'reduceOnly' sent when not required.", C, RWM, "param_not_required", False, False),
    (400, -1114, "TimeInForce parameter sent when not required.", C, RWM, "tif_not_required", False, False),
    (400, -2021, "Order would immediately trigger.", C, RWM, "would_immediately_trigger", False, False),
    (400, -4142, "REJECT: take profit or stop order will be triggered immediately", C, RWM, "would_immediately_trigger", False, False),
    (400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.", C, RWM, "post_only_would_take", False, False),
    # Reduce-only rejected: never "fixed" by stripping reduceOnly.
    (400, -2022, "ReduceOnly Order is rejected.", C, FATAL, "reduce_only_rejected", False, False),
    (400, None, "ReduceOnly Order is rejected.", C, FATAL, "reduce_only_rejected", False, False),
    # Filter failures.
    (400, -4003, "Quantity less than zero.", C, FATAL, "qty_less_than_zero", False, False),
    (400, -4164, "Order's notional must be no smaller than 5 (unless you choose reduce only).", C, FATAL, "min_notional", False, False),
    (400, -4014, "Price not increased by tick size.", C, FATAL, "price_not_on_tick", False, False),
    (400, -4023, "Qty not increased by step size.", C, FATAL, "qty_not_on_step", False, False),
    (400, -1111, "Precision is over the maximum defined for this asset.", C, FATAL, "bad_precision", False, False),
    (400, -4015, "Client order id is not valid.", C, FATAL, "invalid_client_order_id", False, False),
    (400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.", C, FATAL, "use_algo_endpoint", False, False),
    (400, -2019, "Margin is insufficient.", C, FATAL, "insufficient_margin", False, False),
    (400, -4061, "Order's position side does not match user's setting.", C, FATAL, "position_side_mismatch", False, False),
    (400, -1121, "Invalid symbol.", C, FATAL, "bad_symbol", False, False),
    # Benign "no need to change": the wanted state already holds.
    (400, -4046, "No need to change margin type.", OTH, SAFE, "margin_type_unchanged", False, False),
    (400, -4059, "No need to change position side.", OTH, SAFE, "position_side_unchanged", False, False),
    (400, -5027, "No need to modify the order.", OTH, SAFE, "modify_no_change", False, False),
    # Retry-later codes.
    (400, -4117, "stop order is triggering", C, R, "stop_order_triggering", False, False),
    (400, -5043, "A pending modification already exists for this order.", OTH, R, "modification_pending", False, False),
    # Unknown code: fatal, never looped on.
    (400, -9999, "Something new.", C, FATAL, "unclassified_error", False, False),
    (None, None, "", C, FATAL, "unclassified_error", False, False),
]
# fmt: on


@pytest.mark.parametrize(
    ("status", "code", "msg", "op", "cls", "reason", "may_exist", "exists"), CASES
)
def test_documented_examples(status, code, msg, op, cls, reason, may_exist, exists):
    v = classify_error(status, code, msg, operation=op)
    assert (v.error_class, v.reason) == (cls, reason)
    assert v.order_may_exist is may_exist
    assert v.order_exists is exists
    assert (v.http_status, v.code) == (status, code)


# Codes the digest labels REJ (definitely not executed). None of them may be classified as
# "the order may exist", and none may be retried unchanged.
# fmt: off
REJ_CODES = [
    -1002, -1010, -1011, -1013, -1014, -1016, -1020, -1022, -1023, -1099,
    -1100, -1101, -1102, -1103, -1104, -1105, -1106, -1108, -1109, -1110, -1111, -1112,
    -1114, -1115, -1116, -1117, -1118, -1119, -1120, -1121, -1122, -1125, -1126, -1127,
    -1130, -1136, -2010, -2014, -2015, -2016, -2017, -2018, -2019, -2020, -2021, -2022,
    -2023, -2024, -2025, -2026, -2027, -2028,
    *range(-4033, -3999), -4044, -4045, -4047, -4048, -4049, -4050, -4051, -4053, -4054,
    -4055, -4056, -4057, -4058, -4060, -4061, -4062, -4082, -4083, -4084, -4085, -4086,
    -4087, -4088, -4104, -4105, -4106, -4107, -4109, -4114, -4115, -4118, -4120, -4131,
    -4135, -4136, -4137, -4138, -4139, -4140, -4141, -4142, -4144, -4161, -4164, -4165,
    -4183, -4184, -4189, -4192, -4202, -4203, -4205, -4206, -4208, -4209, -4210, -4211,
    -4400, -4401, -4402, -4403, -4531, -5021, -5022, -5024, -5025, -5026, -5029, -5037,
    -5038, -5039, -5040, -5041, -5047,
]
# fmt: on


@pytest.mark.parametrize("code", REJ_CODES)
def test_rejected_codes_are_not_ambiguous_nor_blindly_retried(code):
    v = classify_error(400, code, "", operation=Operation.CREATE)
    assert v.error_class in (FATAL, RWM), v
    assert not v.order_may_exist
    # Every documented code has its own reason tag, so the journal says what happened.
    assert v.reason != "unclassified_error"


# "REJ-retry" in the digest: not executed, safe to resend after backoff.
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, -1001),
        (429, -1003),
        (503, -1008),
        (400, -1015),
        (400, -1021),
        (400, -5028),
        (400, -5043),
    ],
)
def test_rej_retry_codes_are_retryable(status, code):
    v = classify_error(status, code, "", operation=Operation.CREATE)
    assert v.error_class is R
    assert not v.order_may_exist


def test_retry_after_becomes_the_backoff_hint():
    v = classify_error(429, -1003, "Too many requests", operation=C, retry_after_s=7.0)
    assert v.backoff_hint_s == 7.0
    ban = classify_error(418, -1003, "IP banned", operation=C, retry_after_s=300.0)
    assert (ban.reason, ban.backoff_hint_s) == ("ip_banned", 300.0)


def test_ip_ban_without_header_waits_at_least_the_minimum_ban():
    v = classify_error(418, None, "", operation=C)
    assert v.reason == "ip_banned"
    assert v.backoff_hint_s == 120.0


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, -math.inf])
def test_nonsensical_retry_after_is_ignored(bad):
    assert classify_error(429, None, "", retry_after_s=bad).backoff_hint_s is None


def test_retry_after_is_not_attached_to_non_retryable_verdicts():
    # A 503 "Unknown error" is resolved by query, not by waiting and resending.
    v = classify_error(503, None, UNKNOWN_503, operation=C, retry_after_s=5.0)
    assert v.error_class is AMB
    assert v.backoff_hint_s is None


def test_message_matching_is_case_insensitive_substring():
    v = classify_error(503, None, "  SERVICE UNAVAILABLE. (edge-7)", operation=C)
    assert v.reason == "service_unavailable_503"
    v = classify_error(503, None, "upstream: unknown ERROR, please check your request", operation=C)
    assert v.error_class is AMB


def test_contradictory_503_lands_on_the_ambiguous_side():
    # An unknown-outcome code with a not-executed text: ambiguity wins.
    v = classify_error(503, -1000, SERVICE_UNAVAILABLE, operation=C)
    assert v.error_class is AMB


def test_documented_not_executed_texts_only_count_on_503():
    # "Service Unavailable." on a 502 is not the documented 100%-failure response.
    v = classify_error(502, None, SERVICE_UNAVAILABLE, operation=C)
    assert v.error_class is AMB


def test_minus_4116_on_any_placement_never_asks_for_a_new_id():
    for op in (C, OTH):
        v = classify_error(400, -4116, "ClientOrderId is duplicated.", operation=op)
        assert v.error_class is SAFE
        assert v.order_exists
        assert v.order_may_exist


def test_other_operation_is_treated_as_a_mutation():
    assert Operation.OTHER.is_mutation
    v = classify_error(503, None, UNKNOWN_503)  # operation defaults to OTHER
    assert v.error_class is AMB


def test_transport_failure_before_write_is_retryable():
    for op in Operation:
        v = classify_transport_failure(request_written=False, operation=op)
        assert v.error_class is R
        assert not v.order_may_exist
        assert v.reason == "transport_before_write"


def test_transport_failure_after_write_is_ambiguous_for_mutations():
    for op in (C, X, OTH):
        v = classify_transport_failure(request_written=True, operation=op)
        assert v.error_class is AMB
        assert v.order_may_exist
        assert not v.order_exists
    q = classify_transport_failure(request_written=True, operation=Q)
    assert q.error_class is R


def test_unknown_venue_is_a_configuration_error():
    with pytest.raises(CoreValueError) as exc:
        classify_error(400, -1121, venue="kraken")
    assert exc.value.field == "venue"


def test_sim_uses_the_binance_table():
    assert ERROR_TABLES["sim"] is ERROR_TABLES["binance_usdm"] is BINANCE_USDM_TABLE
    assert classify_error(400, -4116, venue="sim", operation=C).order_exists


def test_rules_enforce_the_safety_contract():
    with pytest.raises(CoreValueError) as exc:
        ErrorRule("oops", ErrorClass.AMBIGUOUS, codes={-1})
    assert exc.value.field == "order_may_exist"
    with pytest.raises(CoreValueError):
        ErrorRule("oops", ErrorClass.FATAL, order_exists=True)
    with pytest.raises(CoreValueError) as exc:
        ErrorRule("Not Snake", ErrorClass.FATAL)
    assert exc.value.field == "reason"
    with pytest.raises(CoreValueError) as exc:
        ErrorRule("oops", ErrorClass.FATAL, messages="timeout")
    assert exc.value.field == "messages"
    with pytest.raises(CoreValueError) as exc:
        ErrorTable("v", (), default=ErrorRule("d", ErrorClass.FATAL, codes={-1}))
    assert exc.value.field == "default"


def test_a_custom_table_is_first_match_wins():
    table = ErrorTable(
        "toy",
        (
            ErrorRule("specific", R, codes={-1}, messages=("later",)),
            ErrorRule("generic", FATAL, codes={-1}),
        ),
        default=ErrorRule("other", FATAL),
    )
    assert table.classify(400, -1, "Try LATER").reason == "specific"
    assert table.classify(400, -1, "no").reason == "generic"
    assert table.classify(400, -2, "later").reason == "other"


# ---------------------------------------------------------------- properties

statuses = st.one_of(st.none(), st.integers(min_value=-(10**6), max_value=10**6))
codes = st.one_of(st.none(), st.integers())
messages = st.text(max_size=80)
operations = st.sampled_from(list(Operation))
retry_afters = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@given(statuses, codes, messages, operations, retry_afters)
def test_classification_is_total_and_self_consistent(status, code, msg, op, retry_after):
    v = classify_error(status, code, msg, operation=op, retry_after_s=retry_after)
    assert isinstance(v.error_class, ErrorClass)
    assert v.reason
    assert v.reason == v.reason.lower()
    if v.error_class is AMB:
        assert v.order_may_exist
        assert op.is_mutation  # a read is never ambiguous
    if v.order_exists:
        assert v.order_may_exist
    if v.backoff_hint_s is not None:
        assert math.isfinite(v.backoff_hint_s)
        assert v.backoff_hint_s >= 0


KNOWN_CODES = {code for rule in BINANCE_USDM_TABLE.rules for code in rule.codes}
# Neutral messages: no documented text or keyword inside.
neutral = st.text(alphabet="xyz0123456789 .", max_size=30)


@given(
    st.one_of(
        st.none(),
        st.integers(min_value=400, max_value=499).filter(lambda s: s not in (403, 408, 418, 429)),
    ),
    st.integers().filter(lambda c: c not in KNOWN_CODES),
    neutral,
    operations,
)
def test_unknown_codes_are_fatal(status, code, msg, op):
    v = classify_error(status, code, msg, operation=op)
    assert v.error_class is FATAL
    assert v.reason == "unclassified_error"
    assert not v.order_may_exist


NOT_EXECUTED_503 = {"internal_error", "server_busy", "service_unavailable_503"}


@given(st.integers(min_value=500, max_value=599), codes, messages)
def test_5xx_is_ambiguous_for_create_except_documented_503(status, code, msg):
    v = classify_error(status, code, msg, operation=Operation.CREATE)
    if v.error_class is not AMB:
        assert status == 503
        assert v.reason in NOT_EXECUTED_503
        assert v.error_class is R


@given(
    st.integers(min_value=500, max_value=599),
    codes.filter(lambda c: c not in (-1001, -1008)),
    neutral,
)
def test_5xx_without_a_documented_failure_marker_is_ambiguous(status, code, msg):
    for op in MUTATING_OPERATIONS:
        v = classify_error(status, code, msg, operation=op)
        assert v.error_class is AMB
        assert v.order_may_exist


@given(statuses, codes, messages)
def test_a_read_is_never_ambiguous_and_never_claims_an_order(status, code, msg):
    v = classify_error(status, code, msg, operation=Operation.QUERY)
    assert v.error_class is not AMB
    if v.reason != "duplicate_client_order_id":
        assert not v.order_exists


@given(statuses, codes, messages, operations)
def test_classification_is_deterministic(status, code, msg, op):
    assert classify_error(status, code, msg, operation=op) == classify_error(
        status, code, msg, operation=op
    )
